"""Storage faults under the running daemon: the outbox's disk fills up, or another process locks the outbox.

Before issue 14 both lost alerts silently: a full 200 KiB state directory lost 398 of 400 alerts although
MQTT was connected; an outbox locked for 12 s lost 2 of 40. Now an alert the outbox cannot commit is held in
memory, published directly, and committed once the disk recovers; an ``outbox_unavailable`` technical alert,
the ``gaitwatch_outbox_available`` metric and STATUS show the degraded state meanwhile. Checked on what a
nurse-call integrator receives from a real mosquitto, with the real daemon in its own process.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from test_faults_harness import (
    GUARD_S,
    Integrator,
    base_config,
    check_alerts,
    daemon,
    first_seen_in_order,
    scrape,
    until_metric,
    write_config,
)

pytestmark = pytest.mark.slow


def _private_tmpfs(mnt: Path, size_kib: int, ballast_kib: int, release: Path) -> list[str]:
    """A command prefix that runs the daemon in its own mount namespace with ``mnt`` a ``size_kib`` tmpfs,
    ``ballast_kib`` of it taken by a file that is deleted (the disk recovers) once ``release`` exists."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs util-linux unshare to mount a private tmpfs")
    script = (
        f"mount -t tmpfs -o size={size_kib}k gaitwatch-test {mnt} || exit 77; mkdir {mnt}/state; "
        f"head -c {ballast_kib * 1024} /dev/zero > {mnt}/ballast; "
        # Bounded wait: the helper never outlives the test by more than GUARD_S.
        f"( i=0; while [ ! -e {release} ] && [ $i -lt {int(GUARD_S * 10)} ]; do sleep 0.1; i=$((i+1)); done; "
        f"rm -f {mnt}/ballast ) & "
        'exec "$@"'
    )
    return [unshare, "--map-root-user", "--mount", "sh", "-c", script, "sh"]


async def test_disk_full_loses_no_alert_and_recovers(mosquitto: Any, tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    release = tmp_path / "free-the-disk"
    wrap = _private_tmpfs(mnt, size_kib=2048, ballast_kib=1800, release=release)
    config = write_config(
        tmp_path / "daemon.toml",
        base_config(tmp_path, mosquitto.port, service={"state_dir": str(mnt / "state")}),
    )
    async with Integrator(mosquitto.port) as integrator, daemon(config, tmp_path, wrap=wrap) as d:
        await d.wait_ready()
        await d.alerts(400)
        await d.until(lambda: "done 400" in d.lines, "the end of the burst")
        assert d.held, "the disk filled up during the burst (else this test tests nothing)"
        assert len(d.stored) + len(d.held) == 400, "every alert was committed or held, none refused"
        await integrator.until(lambda: integrator.alert_ids() >= {*d.stored, *d.held}, "all 400 alert ids")
        unavailable = [a for a in integrator.alerts() if a["type"] == "outbox_unavailable"]
        assert [a["phase"] for a in unavailable] == ["start"], unavailable
        assert (await scrape(d.metrics_port))["gaitwatch_outbox_available"] == 0
        assert any("OUTBOX UNAVAILABLE" in n for n in d.notifications), d.notifications

        release.touch()  # the admin frees space
        await until_metric(d, "gaitwatch_alerts_held", lambda v: v == 0, "every held alert committed")
        await integrator.until(
            lambda: [a["phase"] for a in integrator.alerts() if a["type"] == "outbox_unavailable"] == ["start", "end"],
            "the outbox_unavailable incident to end",
        )
        metrics = await scrape(d.metrics_port)
        assert metrics["gaitwatch_outbox_available"] == 1
        assert metrics.get("gaitwatch_alerts_lost_total", 0.0) == 0
        assert await d.stop() == 0
    alerts = integrator.alerts()
    check_alerts(alerts)
    seqs = first_seen_in_order([a for a in alerts if a["type"] == "test"])
    assert len(set(seqs)) == 400, "held alerts continue the outbox's sequence: one seq per alert"
    print(f"disk full: {len(d.stored)} committed at once, {len(d.held)} held and published directly, 0 lost")


async def test_locked_outbox_loses_no_alert_and_commits_them_after(mosquitto: Any, tmp_path: Path) -> None:
    """Another process holds the outbox's write lock (longer than SQLite's busy timeout) during a burst."""
    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, mosquitto.port))
    outbox = tmp_path / "state-pc1" / "outbox.sqlite3"
    async with Integrator(mosquitto.port) as integrator, daemon(config, tmp_path) as d:
        await d.wait_ready()
        intruder = sqlite3.connect(outbox, isolation_level=None, timeout=GUARD_S)
        try:
            intruder.execute("BEGIN IMMEDIATE")  # the write lock, held until ROLLBACK
            await d.alerts(40)
            await d.until(lambda: "done 40" in d.lines, "the end of the burst")
            assert len(d.held) == 40, "nothing could be committed while the outbox was locked"
            await integrator.until(lambda: integrator.alert_ids() >= set(d.held), "all 40 alerts, published directly")
        finally:
            intruder.execute("ROLLBACK")
            intruder.close()
        await until_metric(d, "gaitwatch_alerts_held", lambda v: v == 0, "the held alerts committed")
        assert await d.stop() == 0
    with sqlite3.connect(outbox) as db:
        stored = {row[0] for row in db.execute("SELECT alert_id FROM outbox")}
        unpublished = db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE sink = 'mqtt' AND delivered_at IS NULL"
        ).fetchone()[0]
    assert set(d.held) <= stored, "every held alert reached the disk once the lock was gone"
    assert unpublished == 0
    check_alerts(integrator.alerts())


async def test_a_second_daemon_on_the_same_state_directory_exits_73_naming_the_first(
    mosquitto: Any, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, mosquitto.port))
    async with daemon(config, tmp_path) as first:
        await first.wait_ready()
        assert first.proc is not None
        second = await _run_cli(config)
        assert second.returncode == 73, second.stderr
        assert f"in use by process {first.proc.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert await first.stop() == 0
    # The lock dies with its owner: the next daemon starts.
    async with daemon(config, tmp_path) as again:
        await again.wait_ready()
        assert await again.stop() == 0


async def _run_cli(config: Path) -> Any:
    import asyncio
    import subprocess

    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gaitwatch.tools.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
    )


async def test_state_directory_removed_under_the_running_daemon_loses_no_pending_alert(tmp_path: Path) -> None:
    """An admin's ``rm -rf`` of the state directory while alerts wait for a broker that is down: before, SQLite
    went on writing to the deleted file and every pending alert vanished at the next start. Now the outbox is
    written back where the next start reads it, with every alert in ``seq`` order."""
    from gaitwatch.tools.local_broker import free_port

    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, free_port()))  # nobody listens
    state = tmp_path / "state-pc1"
    async with daemon(config, tmp_path) as d:
        await d.wait_ready()
        await d.alerts(10)
        await d.until(lambda: "done 10" in d.lines, "the first burst")
        shutil.rmtree(state)
        await d.alerts(10)
        await d.until(lambda: d.lines.count("done 10") == 2, "the second burst")
        assert await d.stop() == 0
    assert len(d.stored) == 20 and not d.held, "every alert committed, none held in memory"
    with sqlite3.connect(state / "outbox.sqlite3") as db:
        rows = db.execute(
            "SELECT o.alert_id FROM outbox o JOIN deliveries d ON d.seq = o.seq AND d.sink = 'mqtt' "
            "WHERE d.delivered_at IS NULL ORDER BY o.seq"
        ).fetchall()
    assert [r[0] for r in rows if r[0] in set(d.stored)] == d.stored, "all 20, in the order they were raised"
    assert "was deleted while running" in d.log_text()
