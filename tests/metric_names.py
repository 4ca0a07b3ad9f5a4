"""The metric names the daemon exports, for tests of what reads them (alert rules, the dashboard)."""

from __future__ import annotations

import re

from gaitwatch.daemon.metrics import DaemonMetrics


def exported_metric_names() -> set[str]:
    """Every sample name the daemon can export, including families with no series yet (labelled counters)."""
    text = DaemonMetrics(version="test", cameras=["bay1"]).render().decode()
    names = set(re.findall(r"^(gaitwatch_[a-z_]+)", text, flags=re.MULTILINE))
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",), "info": ("_info",)}
    for family, kind in re.findall(r"^# TYPE (gaitwatch_[a-z_]+) (\w+)", text, flags=re.MULTILINE):
        names.add(family)
        names.update(family + s for s in suffixes.get(kind, ("",)))
    return names
