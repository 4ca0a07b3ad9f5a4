"""The offline gait commands end to end: synth -> train-gait -> eval-gait -> replay -> report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gaitwatch.gait.model import GaitModel
from gaitwatch.tools import cmd_eval_gait, cmd_replay, cmd_report, cmd_synth, cmd_train_gait


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gaitwatch")
    sub = parser.add_subparsers(dest="command", required=True)
    for mod in (cmd_synth, cmd_train_gait, cmd_eval_gait, cmd_replay, cmd_report):
        mod.register(sub)
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def test_synth_train_eval_replay_report(tmp_path: Path) -> None:
    data = tmp_path / "synth"
    assert _cli("synth", "--out", str(data), "--subjects", "12", "--duration", "18", "--seed", "1") == 0
    labels = data / "labels.csv"
    header = labels.read_text().splitlines()[0].split(",")
    assert header[:3] == ["recording", "subject", "label"] and "stride_time_cv" in header
    assert len(list(data.glob("subject_*.npz"))) == 12

    model_path = tmp_path / "model.json"
    assert _cli("train-gait", str(labels), "--out", str(model_path), "--kind", "gnb") == 0
    model = GaitModel.load(model_path)
    assert model.info["data"] == str(labels)

    out = tmp_path / "eval.json"
    assert _cli("eval-gait", str(labels), "--folds", "3", "--json", str(out)) == 0
    figures = json.loads(out.read_text())
    for key in ("balanced_accuracy", "cadence_mae_spm", "stride_cv_mae_pp", "confusion_matrix", "subjects"):
        assert key in figures
    assert figures["cadence_mae_spm"] < 3.0

    replay = tmp_path / "replay.json"
    assert _cli("replay", str(data / "subject_0000.npz"), "--json", str(replay), "--quiet") == 0
    result = json.loads(replay.read_text())
    assert result["windows"] and {"track", "t_start", "t_end", "valid", "state", "cadence_spm"} <= set(
        result["windows"][0]
    )
    assert isinstance(result["alerts"], list)

    report = tmp_path / "report"
    assert _cli("report", str(data / "subject_0001.npz"), "--out", str(report)) == 0
    assert (report / "index.html").is_file() and list(report.glob("track_*.png"))


def test_replay_fps_override_rescales_time(tmp_path: Path) -> None:
    data = tmp_path / "s"
    assert _cli("synth", "--out", str(data), "--subjects", "1", "--duration", "12", "--fps", "10", "--seed", "1") == 0
    out10, out7 = tmp_path / "a.json", tmp_path / "b.json"
    rec = str(data / "subject_0000.npz")
    assert _cli("replay", rec, "--json", str(out10), "--quiet") == 0
    # Claiming the footage was really 7 fps stretches time by 10/7: cadence drops by the same factor.
    assert _cli("replay", rec, "--fps", "7", "--json", str(out7), "--quiet") == 0
    c10 = json.loads(out10.read_text())["summary"]["cadence_median_spm"]
    c7 = json.loads(out7.read_text())["summary"]["cadence_median_spm"]
    assert abs(c7 - c10 * 7.0 / 10.0) < 1.5


def test_unreadable_input_exits_1(tmp_path: Path) -> None:
    assert _cli("replay", str(tmp_path / "missing.npz")) == 1
    assert _cli("eval-gait", str(tmp_path / "missing.csv")) == 1
