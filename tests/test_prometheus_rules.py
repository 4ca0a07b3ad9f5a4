"""The Prometheus alert rules hospital IT loads (config/prometheus/): valid, unit-tested with promtool, and
about metrics the daemon really exports (a renamed metric would otherwise silence an alert rule for good)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from metric_names import exported_metric_names

RULES_DIR = Path(__file__).resolve().parents[1] / "config" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `bash scripts/install.sh --dev` installs Debian's prometheus package")
    return subprocess.run([promtool, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120, check=False)


def test_rules_are_valid() -> None:
    proc = _promtool("check", "rules", "gaitwatch.rules.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rules_fire_when_and_only_when_their_unit_tests_say() -> None:
    proc = _promtool("test", "rules", "gaitwatch.rules.test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_example_scrape_config_is_valid() -> None:
    proc = _promtool("check", "config", "prometheus.example.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_metric_a_rule_uses_is_exported_by_the_daemon() -> None:
    names = exported_metric_names()
    used = set(re.findall(r"\b(gaitwatch_[a-z_]+)", (RULES_DIR / "gaitwatch.rules.yml").read_text()))
    assert used, "the rules use gaitwatch metrics"
    assert used <= names, f"not exported: {sorted(used - names)}"
