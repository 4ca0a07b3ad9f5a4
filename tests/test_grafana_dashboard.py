"""The Grafana dashboard (config/grafana/gaitwatch-dashboard.json): a well-formed dashboard model whose every
query is valid PromQL (checked by promtool) about metrics the daemon exports. Its picture in the README is drawn by
bench/render_dashboard.py from a real daemon scraped by a real Prometheus (no Grafana server is available here)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from metric_names import exported_metric_names

DASHBOARD = Path(__file__).resolve().parents[1] / "config" / "grafana" / "gaitwatch-dashboard.json"


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _queries() -> list[tuple[str, str]]:
    return [(f"{p['title']}/{t['refId']}", t["expr"]) for p in _dashboard()["panels"] for t in p["targets"]]


def test_the_dashboard_model_is_well_formed() -> None:
    d = _dashboard()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
    assert [i["name"] for i in d["__inputs"]] == ["DS_PROMETHEUS"]
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"{p['title']} overlaps another panel"
        cells |= area
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"])
        refs = [t["refId"] for t in p["targets"]]
        assert all(a < b for a, b in pairwise(refs)), "refIds A, B, C... in order"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `bash scripts/install.sh --dev` installs Debian's prometheus package")
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"gaitwatch:dashboard_query_{i}",
                        "expr": expr.replace("$instance", ".*").replace("$__rate_interval", "15s"),
                    }
                    for i, (_, expr) in enumerate(_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(json.dumps(rules), encoding="utf-8")  # JSON is YAML
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_metric_the_dashboard_shows_is_exported_by_the_daemon() -> None:
    names = exported_metric_names()
    used = {name for _, expr in _queries() for name in re.findall(r"\b(gaitwatch_[a-z_]+)", expr)}
    assert used <= names, f"not exported: {sorted(used - names)}"
    # The list: cameras up, frames dropped, stage latencies, people tracked, alerts by type, outbox
    # backlog and oldest age, MQTT connection, event-loop lag.
    for wanted in (
        "gaitwatch_camera_up",
        "gaitwatch_frames_dropped_total",
        "gaitwatch_stage_latency_seconds_bucket",
        "gaitwatch_tracks_active",
        "gaitwatch_alerts_total",
        "gaitwatch_outbox_pending",
        "gaitwatch_outbox_oldest_pending_age_seconds",
        "gaitwatch_mqtt_connected",
        "gaitwatch_event_loop_lag_seconds_bucket",
    ):
        assert wanted in used, wanted
