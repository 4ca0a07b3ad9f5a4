"""A corrupt outbox (issue 14): the daemon refuses it (exit 73) naming the way out, and `gaitwatch outbox
salvage` recovers every readable alert into a fresh outbox with the original seq, so the daemon delivers them.

Before: exit 73 and the pending alerts stranded in the damaged file with no way back.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_daemon_outbox import SCHEMA_2
from test_faults_harness import GUARD_S, Integrator, base_config, daemon, write_config

from gaitwatch.daemon.outbox import Outbox, OutboxStorageError, SinkPolicy
from gaitwatch.daemon.outbox_salvage import salvage
from gaitwatch.daemon.payloads import ClockMap, PublisherIdentity, technical_alert_body
from gaitwatch.gait.types import AlertPhase

IDENTITY = PublisherIdentity(site="ward", host="pc1", boot_id="b00t", software_version="test", ward="")


def _write_outbox(path: Path, n: int) -> list[str]:
    ids = [f"pc1:b00t:{i}" for i in range(1, n + 1)]
    with Outbox(path, 10_000) as box:
        for i, alert_id in enumerate(ids):
            body = technical_alert_body(
                "test",
                AlertPhase.START,
                camera=None,
                identity=IDENTITY,
                clock=ClockMap(0.0),
                t_start=float(i),
                t_observed=float(i),
                alert_id=alert_id,
                incident_id=alert_id,
                evidence={"n": float(i), "padding": 1.0},
            )
            box.add("gaitwatch/v1/ward/pc1/alert", body, alert_id)
    return ids


def _damage(path: Path, share: tuple[float, float] = (0.45, 0.55)) -> None:
    """Overwrite the pages between these shares of the file with noise (as a failing disk would)."""
    data = bytearray(path.read_bytes())
    page = 4096
    first, last = int(len(data) * share[0]) // page, int(len(data) * share[1]) // page
    noise = random.Random(7)
    for p in range(max(first, 2), last + 1):  # pages 0-1: the header and schema; a disk can lose those too,
        data[p * page : (p + 1) * page] = bytes(noise.getrandbits(8) for _ in range(page))  # but then nothing helps
    path.write_bytes(bytes(data))


def test_salvage_recovers_the_readable_rows_with_their_seq(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    ids = _write_outbox(path, 200)
    _damage(path)
    with pytest.raises(OutboxStorageError, match=r"corrupt|not a database"):
        Outbox(path, 10_000)
    report = salvage(path, 10_000)
    assert report.moved_to is not None and report.moved_to.exists(), "the damaged file is kept"
    assert 100 <= report.salvaged < 200, report
    assert report.unreadable > 0 and report.pending == report.salvaged
    with Outbox(path, 10_000) as box:
        rows = box.pending(1000)
        assert len(rows) == report.salvaged
        assert all(r.alert_id == ids[r.seq - 1] for r in rows), "each row keeps its own seq"
        assert box.add("t", b"x", "new") == 201, "new alerts continue above every seq given before"
    assert salvage(path, 10_000).moved_to is None, "a healthy outbox is left alone"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gaitwatch.tools.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=GUARD_S, check=False)


def _damaged_state_dir(state: Path, n: int) -> list[str]:
    state.mkdir(parents=True)
    ids = _write_outbox(state / "outbox.sqlite3", n)
    _damage(state / "outbox.sqlite3")
    return ids


async def test_the_daemon_names_salvage_and_delivers_what_it_recovered(mosquitto: Any, tmp_path: Path) -> None:
    config = base_config(tmp_path, mosquitto.port)
    state = Path(config["service"]["state_dir"])
    ids = await asyncio.to_thread(_damaged_state_dir, state, 120)
    path = write_config(tmp_path / "daemon.toml", config)
    refused = await asyncio.to_thread(_cli, "run", "--config", str(path))
    assert refused.returncode == 73, refused.stderr
    assert f"gaitwatch outbox salvage --state-dir {state}" in refused.stderr
    fixed = await asyncio.to_thread(_cli, "outbox", "salvage", "--config", str(path))
    assert fixed.returncode == 0, fixed.stderr
    salvaged = int(fixed.stdout.split("salvaged=")[1].split()[0])
    assert salvaged >= 60, fixed.stdout
    async with Integrator(mosquitto.port) as integrator, daemon(path, tmp_path) as d:
        await d.wait_ready()
        await integrator.until(lambda: len(integrator.alert_ids() & set(ids)) == salvaged, "every salvaged alert")
        assert await d.stop() == 0
    assert {a["seq"] for a in integrator.alerts() if a["alert_id"] in ids} <= set(range(1, 121))


def test_salvage_keeps_each_sinks_delivery_state(tmp_path: Path) -> None:
    """Schema 3: the per-sink state of every salvaged row comes back as it was (mqtt published, fhir not yet;
    a fhir refusal stays a refusal), so no sink re-sends what it delivered."""
    path = tmp_path / "outbox.sqlite3"
    ids = _write_outbox(path, 200)
    sinks = [SinkPolicy("mqtt"), SinkPolicy("fhir")]
    with Outbox(path, 10_000, sinks=sinks) as box:  # the rows predate fhir: give them a fhir state by hand
        box._conn.execute("INSERT INTO deliveries (seq, sink) SELECT seq, 'fhir' FROM outbox")
        box.mark_published_many(list(range(1, 101)), now_wall=1000.0)
        box.mark_published_many(list(range(1, 51)), sink="fhir", now_wall=2000.0)
        box.mark_rejected_many({199: "HTTP 422"}, sink="fhir", now_wall=3000.0)
    _damage(path, (0.7, 0.75))
    report = salvage(path, 10_000)
    assert report.moved_to is not None and report.salvaged > 0
    with Outbox(path, 10_000, sinks=sinks) as box:
        mqtt = {r.seq for r in box.pending(1000)}
        fhir = {r.seq for r in box.pending(1000, sink="fhir")}
        salvaged = mqtt | fhir | set(range(1, 51))
        assert all(seq not in mqtt for seq in range(1, 101)), "published rows are not re-sent over mqtt"
        assert all(seq not in fhir for seq in range(1, 51)), "delivered rows are not re-sent to fhir"
        assert {seq for seq in range(101, 201) if seq in salvaged} <= mqtt
        if 199 in salvaged:
            assert 199 not in fhir, "a refusal stays a refusal"
        assert box.deliveries(10)[0].delivered_wall == 2000.0 and box.deliveries(10)[1].delivered_wall == 1000.0
        assert all(box.pending(1000)[i].alert_id == ids[r - 1] for i, r in enumerate(sorted(mqtt)))


def test_salvage_reads_a_schema_2_outbox(tmp_path: Path) -> None:
    """A file damaged before its first open by this version (schema 2: published_wall/acked_wall columns) is
    salvaged into schema 3 with its published state as the mqtt delivery."""
    path = tmp_path / "outbox.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA_2)
    for seq in range(1, 301):
        published = 1000.0 if seq <= 150 else None
        db.execute("INSERT INTO outbox VALUES (?, ?, 't', ?, 1.0, ?, NULL)", (seq, f"id-{seq}", b"x" * 300, published))
    db.execute("PRAGMA user_version=2")
    db.close()
    _damage(path)
    report = salvage(path, 10_000)
    assert report.moved_to is not None and 0 < report.salvaged < 300
    with Outbox(path, 10_000) as box:
        pending = [r.seq for r in box.pending(1000)]
        assert pending and all(seq > 150 for seq in pending), "published rows stay published"
        assert report.pending == len(pending)
        assert box.deliveries(1)[0].delivered_wall == 1000.0
