"""Gait speed and step length in metres on generated walkers seen through calibrated ward cameras.

    .venv/bin/python bench/floor_speed.py [--walkers 40] [--fps 15,30] [--seed 17] [--by-group]

Walkers of every constant-speed pattern (gaitwatch.gait.offline.floor_eval.EVAL_PATTERNS) through four ward
cameras (side and oblique at wall height, a ceiling-high corner camera, one watching walkers approach), each
calibrated twice: from up to 9 floor marks measured to +-2 cm (image points clicked to the pixel) and from the
mounting (height +-3 cm, tilt +-1 deg off the truth). Nothing is tuned per camera. Prints JSON: signed error
mean and sd, absolute error median and 95th percentile (reference for single-camera speed against an
instrumented walkway: -0.02 +- 0.11 m/s).
"""

from __future__ import annotations

import argparse
import json

from gaitwatch.gait.offline.floor_eval import error_table, evaluate_floor, summarise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--walkers", type=int, default=40)
    parser.add_argument("--fps", default="15,30")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--by-group", action="store_true", help="also per camera, frame rate and calibration")
    args = parser.parse_args()
    fps = tuple(float(f) for f in args.fps.split(","))
    cases = evaluate_floor(args.walkers, fps, args.seed)
    out = error_table(cases) if args.by_group else {"all": summarise(cases)}
    rounded = {k: {n: round(v, 4) for n, v in d.items()} for k, d in out.items()}
    print(json.dumps(rounded, indent=1))


if __name__ == "__main__":
    main()
