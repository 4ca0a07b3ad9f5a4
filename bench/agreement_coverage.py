"""How often the 95 % intervals of ``gaitwatch agreement`` cover the true agreement of generated raters.

Three raters per trial; for each episode a rater gives the true call with probability ``accuracy`` and a random
call otherwise, so the expected Cohen's and Fleiss' kappa are ``accuracy ** 2``
(``gaitwatch.gait.offline.agreement.simulated_episodes``). Also checks the Cohen's kappa of every trial against
scikit-learn's ``cohen_kappa_score`` (largest absolute difference printed).

Usage: ``python bench/agreement_coverage.py [--trials N] [--bootstrap B] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from gaitwatch.gait.offline.agreement import agreement_report, rated_windows, simulated_episodes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for accuracy in (0.6, 0.8, 0.9):
        for n_rec in (10, 20, 40):
            true_kappa = accuracy**2
            cohen = fleiss = 0
            max_diff = 0.0
            for trial in range(args.trials):
                rw = rated_windows(simulated_episodes(n_rec, ("a", "b", "c"), accuracy, seed=10_000 + trial))
                rep = agreement_report(rw, n_boot=args.bootstrap, seed=trial)
                pair = rep["pairs"][0]["kappa"]
                max_diff = max(max_diff, abs(pair["value"] - cohen_kappa_score(rw.ratings[:, 0], rw.ratings[:, 1])))
                cohen += pair["ci95"][0] <= true_kappa <= pair["ci95"][1]
                f = rep["fleiss"]["kappa"]
                fleiss += f["ci95"][0] <= true_kappa <= f["ci95"][1]
            row = {
                "accuracy": accuracy,
                "true_kappa": round(true_kappa, 3),
                "recordings": n_rec,
                "trials": args.trials,
                "cohen_coverage": cohen / args.trials,
                "fleiss_coverage": fleiss / args.trials,
                "max_abs_diff_vs_sklearn": max_diff,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
