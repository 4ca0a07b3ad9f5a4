"""``gaitwatch eval-gait --synthetic``: the floor and ward-scene figures of issue 17 (the bench scripts' code)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gaitwatch.tools.cli import main
from gaitwatch.tools.cmd_eval_gait import FLOOR_KEYS, WARD_KEYS


def test_synthetic_eval_reports_floor_and_ward_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    argv = ["eval-gait", "--synthetic", "4", "--fps", "15", "--model", "default", "--walkers", "1"]
    argv += ["--scenes", "2", "--night-hours", "0.02", "--json", str(out)]
    assert main(argv) == 0
    figures = json.loads(out.read_text())
    for key in (*FLOOR_KEYS, *WARD_KEYS):
        assert isinstance(figures[key], float) and math.isfinite(figures[key]), key
    assert 0.0 <= figures["bed_exit_sensitivity"] <= 1.0 and figures["bed_exit_false_per_8h"] >= 0.0
    assert figures["floor"]["walkers"] == 1 and figures["ward"]["bed_exits"] == 2.0
    text = capsys.readouterr().out
    for words in ("speed error median=", "bed exits (n=2)", "false bed_exit per 8 h=", "sit-to-stand time median AE="):
        assert words in text


def test_parts_left_out_give_null_keys(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    argv = ["eval-gait", "--synthetic", "4", "--fps", "15", "--model", "default", "--walkers", "0"]
    argv += ["--scenes", "0", "--night-hours", "0", "--json", str(out)]
    assert main(argv) == 0
    figures = json.loads(out.read_text())
    assert all(figures[k] is None for k in (*FLOOR_KEYS, *WARD_KEYS))
    assert "floor" not in figures and "ward" not in figures
