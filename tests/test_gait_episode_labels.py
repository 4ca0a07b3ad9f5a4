"""``train-gait`` and ``eval-gait`` on clinicians' episode labels (the CSV ``gaitwatch review`` writes)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gaitwatch.gait.offline.episodes import Episode, write_episodes
from gaitwatch.gait.offline.labels import episode_windows
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.tools.cli import main


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("episodes")
    assert main(["synth", "--out", str(out), "--subjects", "14", "--duration", "20", "--seed", "3"]) == 0
    return out


def _truth(folder: Path) -> list[dict[str, str]]:
    with (folder / "labels.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _episodes(rows: list[dict[str, str]], folder: Path, flip_rater_c: bool = True) -> list[Episode]:
    """Three raters over each whole recording (its one walker is track 1): a and b give the truth, c disagrees
    on every fourth recording; a also marks the last 5 s unusable."""
    out = []
    for i, r in enumerate(rows):
        for rater in ("a", "b", "c"):
            label = r["label"]
            if flip_rater_c and rater == "c" and i % 4 == 0:
                label = "normal" if label == "abnormal" else "abnormal"
            pattern = r["pattern"] if label == "abnormal" else ""
            out.append(Episode(r["recording"], "1", 0.0, 20.0, rater, label, pattern, path=folder / r["recording"]))
        out.append(Episode(r["recording"], "1", 15.0, 20.0, "a", "unusable", path=folder / r["recording"]))
    return out


def test_windows_take_the_majority_and_drop_unusable(synth_dir: Path) -> None:
    rows = _truth(synth_dir)
    eps = _episodes(rows, synth_dir)
    data, group_of = episode_windows(eps, GaitSettings(), hop_s=2.0)
    assert len(data) > 0
    recordings = sorted({r["recording"] for r in rows})
    truth = {r["recording"]: r["label"] == "abnormal" for r in rows}
    # The majority (a and b) is the truth even where c disagrees; one group per recording.
    assert [bool(x) for x in data.abnormal] == [truth[recordings[g]] for g in group_of]
    assert data.subject.tolist() == group_of
    # With only c and a's "unusable" left over the last 5 s, a tie between a's and c's calls drops the window.
    two = [e for e in eps if e.rater in ("a", "c")]
    tied, _ = episode_windows(two, GaitSettings(), hop_s=2.0)
    assert len(tied) < len(data)


def test_train_on_episode_labels_then_evaluate_held_out_recordings(synth_dir: Path, tmp_path: Path) -> None:
    rows = _truth(synth_dir)
    train_rows, test_rows = rows[:10], rows[10:]
    train_csv, test_csv = synth_dir / "train_episodes.csv", synth_dir / "test_episodes.csv"
    write_episodes(train_csv, _episodes(train_rows, synth_dir))
    write_episodes(test_csv, _episodes(test_rows, synth_dir, flip_rater_c=False))
    model = tmp_path / "site_model.json"
    assert main(["train-gait", str(train_csv), "--out", str(model)]) == 0
    info = json.loads(model.read_text())["info"]
    assert info["data"] == str(train_csv) and info["raters"] == 3
    out = tmp_path / "eval.json"
    assert main(["eval-gait", str(test_csv), "--model", str(model), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] > 0 and np.isfinite(result["balanced_accuracy"])
    assert result["cadence_mae_spm"] is None  # clinicians' labels carry no ground truth
    # Leave-recordings-out cross-validation on the same kind of file runs too.
    assert main(["eval-gait", str(train_csv), "--folds", "2", "--kind", "gnb"]) == 0
