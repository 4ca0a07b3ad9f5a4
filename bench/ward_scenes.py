"""Bed exits, normal nights and chair rises on generated ward scenes, through the daemon's own gait stage.

    .venv/bin/python bench/ward_scenes.py [--bed-exits 100] [--night-hours 8] [--chair-rises 40] [--fps 15,30]
        [--seed 17]

Scenes of gaitwatch.gait.offline.ward_scenes (a patient in a bed or a chair, a nurse at the bedside, seen by a
wall camera 2.6 m up calibrated from 9 floor marks measured to +-2 cm) rendered with pixel jitter, compressed
world depth and dropped frames, fed frame by frame through GaitStage + FloorStage (posture, zones, ExitWatch).
Prints JSON per frame rate: bed_exit_sensitivity (called >= 3 s before the stand-up began), bed_exit_lead_s_median,
bed_exit_false_per_8h (normal nights: turning, sitting up and lying back, a nurse every ~20 min),
chair_rise_median_ae_s (against the generated movement's duration). Generated scenes only: see the module's
docstring for what is not modelled.
"""

from __future__ import annotations

import argparse
import json

from gaitwatch.gait.offline.ward_scenes import evaluate_bed_exits, evaluate_chair_rises, evaluate_nights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bed-exits", type=int, default=100)
    parser.add_argument("--night-hours", type=float, default=8.0)
    parser.add_argument("--chair-rises", type=int, default=40)
    parser.add_argument("--fps", default="15,30")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    out: dict[str, dict[str, float]] = {}
    for k, fps in enumerate(float(f) for f in args.fps.split(",")):
        figures: dict[str, float] = {}
        if args.bed_exits:
            figures.update(evaluate_bed_exits(args.bed_exits, fps, args.seed + k))
        if args.night_hours:
            figures.update(evaluate_nights(args.night_hours, fps, args.seed + 100 + k))
        if args.chair_rises:
            figures.update(evaluate_chair_rises(args.chair_rises, fps, args.seed + 200 + k))
        out[f"fps={fps:g}"] = {n: round(v, 4) for n, v in figures.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
