"""The alert outbox: durable, ordered, bounded, idempotent, and loud about storage problems."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gaitwatch.daemon.outbox import Outbox, OutboxFullError, OutboxStats, OutboxStorageError, SinkPolicy

T0 = 1_700_000_000.0  # a fixed wall time, so ages are exact


def make(tmp_path: Path, max_rows: int = 100, *, ack_required: bool = False) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite", max_rows, ack_required=ack_required)


def body(alert_id: str) -> bytes:
    """An alert body as the daemon stores it (``ack_token`` included)."""
    return json.dumps(
        {"schema": "gaitwatch.alert/1", "alert_id": alert_id, "ack_token": f"token-of-{alert_id}"}
    ).encode()


def token(alert_id: str) -> str:
    return f"token-of-{alert_id}"


def test_add_returns_increasing_seq_and_pending_lists_in_seq_order(tmp_path: Path) -> None:
    with make(tmp_path) as box:
        seqs = [box.add(f"t/{i}", f"p{i}".encode(), f"id-{i}", now_wall=T0 + i) for i in range(5)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        rows = box.pending(10)
        assert [r.seq for r in rows] == seqs
        assert [r.alert_id for r in rows] == [f"id-{i}" for i in range(5)]
        assert rows[2].topic == "t/2" and rows[2].payload == b"p2" and rows[2].created_wall == T0 + 2
        assert rows[2].published_wall is None
        assert [r.seq for r in box.pending(2)] == seqs[:2]


def test_seq_keeps_growing_across_restarts_even_after_cleanup(tmp_path: Path) -> None:
    with make(tmp_path) as box:
        seqs = [box.add("t", b"x", f"a{i}", now_wall=T0) for i in range(3)]
        box.mark_published_many(seqs, now_wall=T0)
        assert box.cleanup(0.0, now_wall=T0 + 1) == 3
        assert box.row_count() == 0
    with make(tmp_path) as box:
        assert box.add("t", b"x", "after-restart") == seqs[-1] + 1


def test_add_is_idempotent_on_alert_id(tmp_path: Path) -> None:
    with make(tmp_path) as box:
        first = box.add("t", b"one", "same-id")
        again = box.add("t", b"two", "same-id")
        assert again == first
        rows = box.pending(10)
        assert len(rows) == 1 and rows[0].payload == b"one"


def test_mark_published_takes_rows_out_of_pending(tmp_path: Path) -> None:
    with make(tmp_path) as box:
        a, b, c = (box.add("t", b"x", f"a{i}", now_wall=T0) for i in range(3))
        assert box.mark_published(b, now_wall=T0 + 5)
        assert not box.mark_published(9999)
        assert [r.seq for r in box.pending(10)] == [a, c]
        assert box.mark_published_many([a, c], now_wall=T0 + 6) == 2
        assert box.pending(10) == [] and box.pending_count() == 0
        assert box.row_count() == 3  # delivered rows stay until cleanup


def test_pending_count_and_oldest_age(tmp_path: Path) -> None:
    with make(tmp_path) as box:
        assert box.pending_count() == 0
        assert box.oldest_pending_age_s(T0) == 0.0
        first = box.add("t", b"x", "a", now_wall=T0)
        box.add("t", b"x", "b", now_wall=T0 + 30)
        assert box.pending_count() == 2
        assert box.oldest_pending_age_s(T0 + 100) == pytest.approx(100.0)
        box.mark_published(first, now_wall=T0 + 100)
        assert box.pending_count() == 1
        assert box.oldest_pending_age_s(T0 + 100) == pytest.approx(70.0)


def test_cleanup_deletes_only_old_delivered_rows(tmp_path: Path) -> None:
    with make(tmp_path) as box:
        old = box.add("t", b"x", "old", now_wall=T0)
        recent = box.add("t", b"x", "recent", now_wall=T0)
        undelivered = box.add("t", b"x", "undelivered", now_wall=T0 - 1e6)
        box.mark_published(old, now_wall=T0)
        box.mark_published(recent, now_wall=T0 + 90)
        assert box.cleanup(60.0, now_wall=T0 + 100) == 1
        assert box.row_count() == 2
        assert [r.seq for r in box.pending(10)] == [undelivered]


def test_full_outbox_raises_and_stores_nothing(tmp_path: Path) -> None:
    with make(tmp_path, max_rows=3) as box:
        for i in range(3):
            box.add("t", b"x", f"a{i}")
        with pytest.raises(OutboxFullError) as err:
            box.add("t", b"x", "one-too-many")
        assert str(box.path) in str(err.value) and "one-too-many" in str(err.value)
        assert err.value.path == box.path and err.value.max_rows == 3
        assert [r.alert_id for r in box.pending(10)] == ["a0", "a1", "a2"]


def test_full_outbox_evicts_oldest_delivered_rows_first(tmp_path: Path) -> None:
    with make(tmp_path, max_rows=3) as box:
        seqs = [box.add("t", b"x", f"a{i}") for i in range(3)]
        box.mark_published(seqs[0])
        box.mark_published(seqs[1])
        box.add("t", b"x", "new")
        assert box.row_count() == 3
        assert [r.alert_id for r in box.pending(10)] == ["a2", "new"]


def test_ack_mode_keeps_unacknowledged_rows_and_lists_them_for_republishing(tmp_path: Path) -> None:
    with make(tmp_path, max_rows=2, ack_required=True) as box:
        a = box.add("t", body("a"), "a", now_wall=T0)
        b = box.add("t", body("b"), "b", now_wall=T0)
        box.mark_published_many([a, b], now_wall=T0 + 1)
        # Published but unacknowledged rows are not "delivered": no room, not cleaned up.
        with pytest.raises(OutboxFullError):
            box.add("t", b"x", "c")
        assert box.cleanup(0.0, now_wall=T0 + 1000) == 0
        assert [r.seq for r in box.unacked(T0 + 1, 10)] == [a, b]
        assert box.unacked(T0 + 0.5, 10) == []  # published after the cutoff: not due yet
        assert box.mark_acked("a", token("a"), now_wall=T0 + 2)
        assert not box.mark_acked("a", token("a"), now_wall=T0 + 3)  # already acknowledged
        assert not box.mark_acked("unknown", token("unknown"))
        assert [r.alert_id for r in box.unacked(T0 + 10, 10)] == ["b"]
        box.add("t", b"x", "c")  # the acknowledged row made room
        assert box.row_count() == 2


def test_overflow_alert_is_stored_over_the_limit(tmp_path: Path) -> None:
    """The technical alert that reports a full outbox must get in: that is the point of it."""
    with make(tmp_path, max_rows=2) as box:
        box.add("t", b"x", "a")
        box.add("t", b"x", "b")
        with pytest.raises(OutboxFullError):
            box.add("t", b"x", "c")
        seq = box.add("t", b"overflow", "outbox-full", over_limit=True)
        assert box.row_count() == 3 and box.pending(10)[-1].seq == seq


def test_acks_in_one_transaction_and_stats(tmp_path: Path) -> None:
    with make(tmp_path, ack_required=True) as box:
        seqs = [box.add("t", body(f"id-{i}"), f"id-{i}", now_wall=T0 + i) for i in range(4)]
        assert box.stats(T0 + 10) == OutboxStats(pending=4, oldest_pending_age_s=10.0, unacked=0, rows=4)
        box.mark_published_many(seqs[:3], now_wall=T0 + 11)
        assert box.stats(T0 + 20) == OutboxStats(pending=1, oldest_pending_age_s=17.0, unacked=3, rows=4)
        claims = [
            ("id-0", token("id-0")),
            ("id-0", token("id-0")),  # twice: counted once
            ("id-1", "a guess"),  # wrong token
            ("id-3", token("id-3")),  # never published: an ack cannot precede the alert
            ("other-host:b:1", "x"),  # not ours
        ]
        assert box.mark_acked_many(claims, now_wall=T0 + 21) == 1
        assert box.unacked_count() == 2 and box.pending_count() == 1
        assert box.stats(T0 + 30) == OutboxStats(pending=1, oldest_pending_age_s=27.0, unacked=2, rows=4)


def test_write_probe_uses_no_seq(tmp_path: Path) -> None:
    with make(tmp_path) as box:
        first = box.add("t", b"x", "a")
        box.check_writable()
        box.check_writable()
        assert box.add("t", b"x", "b") == first + 1


def test_write_probe_fails_when_the_disk_is_full(tmp_path: Path) -> None:
    """An existing outbox on a full disk opens fine (opening writes nothing): the probe is what catches it."""
    with make(tmp_path) as box:
        box.add("t", b"x", "before")
        pages = box._conn.execute("PRAGMA page_count").fetchone()[0]  # test-only: cap the file at its size
        box._conn.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(OutboxStorageError, match="full"):
            box.check_writable()
        assert [r.alert_id for r in box.pending(10)] == ["before"]


def test_database_is_in_wal_mode_on_disk(tmp_path: Path) -> None:
    with make(tmp_path) as box:
        box.add("t", b"x", "a")
        other = sqlite3.connect(box.path)
        try:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            other.close()


def test_committed_rows_survive_sigkill_right_after_add(tmp_path: Path) -> None:
    """A writer process is killed -9 while adding; every seq it reported as returned is on disk."""
    path = tmp_path / "outbox.sqlite"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from gaitwatch.daemon.outbox import Outbox
        box = Outbox(Path({str(path)!r}), 10_000)
        for i in range(10_000):
            seq = box.add("t", b"payload", f"id-{{i}}")
            sys.stdout.write(f"{{seq}}\\n")
            sys.stdout.flush()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    reported = [int(proc.stdout.readline()) for _ in range(40)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Outbox(path, 10_000) as box:
        stored = {r.seq for r in box.pending(100_000)}
    assert set(reported) <= stored
    assert min(stored) == 1 and max(stored) == len(stored)  # no gaps


def test_corrupt_file_is_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"this is not a database, it is a text file that got here somehow" * 100)
    with pytest.raises(OutboxStorageError) as err:
        Outbox(path, 10)
    assert str(path) in str(err.value) and "not an SQLite database" in str(err.value)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "outbox.sqlite"
    with pytest.raises(OutboxStorageError, match="does not exist") as err:
        Outbox(path, 10)
    assert str(path) in str(err.value)


def test_unopenable_path_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.mkdir()  # a directory where the database file should be
    with pytest.raises(OutboxStorageError) as err:
        Outbox(path, 10)
    assert str(path) in str(err.value) and "cannot open" in str(err.value)


def test_disk_full_is_a_clear_error_and_keeps_earlier_rows(tmp_path: Path) -> None:
    """SQLite's own size limit produces the same SQLITE_FULL as a full disk (see the tmpfs test below)."""
    with make(tmp_path, max_rows=100_000) as box:
        box.add("t", b"x", "before")
        pages = box._conn.execute("PRAGMA page_count").fetchone()[0]  # test-only: cap the file at its size
        box._conn.execute(f"PRAGMA max_page_count={pages + 1}")
        with pytest.raises(OutboxStorageError) as err:
            for i in range(1000):
                box.add("t", b"y" * 4000, f"big-{i}")
        assert "full" in str(err.value) and str(box.path) in str(err.value)
        assert box.pending(1)[0].alert_id == "before"


def test_full_filesystem_is_a_clear_error(tmp_path: Path) -> None:
    """The real thing: a 256 kB tmpfs (in a private mount namespace) fills up under the outbox."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs util-linux unshare to mount a private tmpfs")
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from gaitwatch.daemon.outbox import Outbox, OutboxStorageError
        box = Outbox(Path(sys.argv[1]) / "outbox.sqlite", 1_000_000)
        added = 0
        try:
            for i in range(100_000):
                box.add("t", b"y" * 1000, f"id-{i}")
                added += 1
        except OutboxStorageError as exc:
            print("ERROR", exc)
            print("ADDED", added)
            print("KEPT", box.pending_count())
        """
    )
    mnt = tmp_path / "small"
    mnt.mkdir()
    cmd = f'mount -t tmpfs -o size=256k gaitwatch-test {mnt} || exit 77; exec {sys.executable} -c "$0" {mnt}'
    proc = subprocess.run(
        [unshare, "--map-root-user", "--mount", "sh", "-c", cmd, script], capture_output=True, text=True
    )
    if proc.returncode == 77 or "unshare failed" in proc.stderr:
        pytest.skip(f"cannot mount a private tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert "the disk" in lines["ERROR"] and str(mnt / "outbox.sqlite") in lines["ERROR"]
    # Every alert whose add() returned is still there; the refused one was not half-stored.
    assert int(lines["KEPT"]) == int(lines["ADDED"]) > 0


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(st.sampled_from(["add", "publish_first", "cleanup"]), max_size=40))
def test_matches_a_simple_model(tmp_path_factory: pytest.TempPathFactory, ops: list[str]) -> None:
    """Random sequences of operations: pending rows are exactly the added-but-unpublished ones, in order."""
    with Outbox(tmp_path_factory.mktemp("model") / "o.sqlite", 1000) as box:
        pending: list[int] = []
        last = 0
        for n, op in enumerate(ops):
            if op == "add":
                seq = box.add("t", b"x", f"id-{n}", now_wall=T0)
                assert seq > last
                last = seq
                pending.append(seq)
            elif op == "publish_first" and pending:
                assert box.mark_published(pending.pop(0), now_wall=T0)
            elif op == "cleanup":
                box.cleanup(0.0, now_wall=T0 + 1)
            assert [r.seq for r in box.pending(1000)] == pending
            assert box.pending_count() == len(pending)


def test_an_ack_counts_only_for_a_published_alert_with_its_own_token(tmp_path: Path) -> None:
    """Issue 14: alert ids are predictable (host, boot id and a counter), so an ack naming an id must not
    suppress the alert: it needs the alert's published payload's secret token."""
    with make(tmp_path, ack_required=True) as box:
        seq = box.add("t", body("h:b:1"), "h:b:1", now_wall=T0)
        assert not box.mark_acked("h:b:1", token("h:b:1")), "not published yet: nobody can have received it"
        assert box.pending_count() == 1, "the early ack did not mark it published"
        box.mark_published(seq, now_wall=T0 + 1)
        assert not box.mark_acked("h:b:1", "token-of-h:b:2"), "another alert's token"
        assert box.mark_acked("h:b:1", token("h:b:1"))
        assert box.unacked_count() == 0


def test_an_outbox_written_before_ack_tokens_is_migrated_in_place(tmp_path: Path) -> None:
    """Schema 1 (before ack tokens): undelivered alerts get a token when the new version opens the file, so they
    can still be acknowledged; delivered rows, foreign payloads and seq values stay as they were."""
    import sqlite3

    path = tmp_path / "outbox.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
                payload BLOB NOT NULL, created_wall REAL NOT NULL, published_wall REAL, acked_wall REAL);
            CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_wall IS NULL;
            CREATE TABLE write_probe (data BLOB NOT NULL);
            PRAGMA user_version=1;
            """
        )
        old = json.dumps({"schema": "gaitwatch.alert/1", "alert_id": "h:b:1"}).encode()
        db.execute("INSERT INTO outbox VALUES (7, 'h:b:1', 't', ?, ?, ?, NULL)", (old, T0, T0 + 1))
        db.execute("INSERT INTO outbox VALUES (8, 'other', 't', ?, ?, NULL, NULL)", (b"not an alert", T0))
    with Outbox(path, 100, ack_required=True) as box:
        row = box.unacked(T0 + 10, 10)[0]
        migrated = json.loads(row.payload)
        assert row.seq == 7 and migrated["alert_id"] == "h:b:1"
        assert isinstance(migrated["ack_token"], str) and len(migrated["ack_token"]) >= 16
        assert box.pending(10)[0].payload == b"not an alert"
        assert box.mark_acked("h:b:1", migrated["ack_token"])
        assert box.add("t", body("new"), "new") == 9, "seq continues"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3


def test_without_ack_mode_nothing_counts_as_awaiting_an_ack(tmp_path: Path) -> None:
    with make(tmp_path) as box:
        box.mark_published(box.add("t", body("a"), "a", now_wall=T0), now_wall=T0 + 1)
        assert box.stats(T0 + 2) == OutboxStats(pending=0, oldest_pending_age_s=0.0, unacked=0, rows=1)


# -- per-sink delivery state (schema 3, issue 15) ------------------------------------------------------------

# The schema exactly as the version before per-sink delivery state (schema 2) wrote it.
SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id       TEXT    NOT NULL UNIQUE,
    topic          TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    created_wall   REAL    NOT NULL,
    published_wall REAL,
    acked_wall     REAL
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_wall IS NULL;
CREATE TABLE IF NOT EXISTS write_probe (data BLOB NOT NULL);
"""


def _write_schema_2(path: Path) -> dict[int, tuple[str, bytes, float | None, float | None]]:
    """An outbox as schema 2 leaves it: pending, published-unacked and acknowledged rows, and a high-water mark
    above the last row (rows 10-12 were cleaned up). Returns seq -> (alert_id, payload, published, acked)."""
    rows: dict[int, tuple[str, bytes, float | None, float | None]] = {
        7: ("h:b:7", body("h:b:7"), None, None),
        8: ("h:b:8", body("h:b:8"), T0 + 1, None),
        9: ("h:b:9", body("h:b:9"), T0 + 2, T0 + 3),
        13: ("other", b"not an alert", None, None),
    }
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA_2)
        for seq, (alert_id, payload, published, acked) in rows.items():
            db.execute(
                "INSERT INTO outbox (seq, alert_id, topic, payload, created_wall, published_wall, acked_wall) "
                "VALUES (?, ?, 'gaitwatch/v1/ward/pc1/alert', ?, ?, ?, ?)",
                (seq, alert_id, payload, T0, published, acked),
            )
        db.execute("UPDATE sqlite_sequence SET seq = 16 WHERE name = 'outbox'")
        db.execute("PRAGMA user_version=2")
    finally:
        db.close()
    return rows


def test_an_outbox_written_by_schema_2_is_migrated_in_place_to_per_sink_deliveries(tmp_path: Path) -> None:
    """Schema 2 -> 3: every row stays (same seq, id, topic, payload bytes, creation time), its published/acked
    state becomes its ``mqtt`` delivery, and the sequence continues above the old high-water mark. A sink
    configured at the same time (fhir) is owed only the alerts stored from then on."""
    path = tmp_path / "outbox.sqlite"
    before = _write_schema_2(path)
    sinks = [SinkPolicy("mqtt", ack_required=True), SinkPolicy("fhir")]
    with Outbox(path, 100, sinks=sinks) as box:
        assert box.row_count() == 4 and box.last_seq() == 16
        assert [(r.seq, r.alert_id, r.payload) for r in box.pending(10)] == [
            (7, "h:b:7", before[7][1]),
            (13, "other", b"not an alert"),
        ]
        assert all(r.topic == "gaitwatch/v1/ward/pc1/alert" and r.created_wall == T0 for r in box.pending(10))
        assert [(r.seq, r.published_wall) for r in box.unacked(T0 + 10, 10)] == [(8, T0 + 1)]
        for seq, (_, _, published, acked) in before.items():
            (state,) = box.deliveries(seq)
            assert (state.sink, state.delivered_wall, state.acked_wall) == ("mqtt", published, acked)
            assert state.attempts == (0 if published is None else 1)
        assert box.pending(10, sink="fhir") == [], "alerts stored before the fhir sink existed are not owed to it"
        assert box.stats(T0 + 5) == OutboxStats(pending=2, oldest_pending_age_s=5.0, unacked=1, rows=4)
        # The migrated state works: the published row can be acknowledged, the acknowledged one cleaned up.
        assert box.mark_acked("h:b:8", token("h:b:8"), now_wall=T0 + 4)
        assert box.cleanup(60.0, now_wall=T0 + 1000) == 2
        assert {r.seq for r in box.pending(10)} == {7, 13}
        new = box.add("t", body("new"), "new", now_wall=T0)
        assert new == 17, "seq continues above every seq given before"
        assert [d.sink for d in box.deliveries(new)] == ["fhir", "mqtt"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
        columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
        assert columns == {"seq", "alert_id", "topic", "payload", "created_wall"}
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'outbox_unpublished'").fetchall() == []
    with Outbox(path, 100, sinks=sinks) as box:  # opening a migrated file again changes nothing
        assert box.row_count() == 3 and box.last_seq() == 17


def test_a_schema_2_outbox_opened_without_ack_mode_keeps_published_rows_delivered(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    _write_schema_2(path)
    with Outbox(path, 100) as box:
        assert [r.seq for r in box.pending(10)] == [7, 13]
        assert box.cleanup(0.0, now_wall=T0 + 10) == 2  # 8 and 9 were published: done without acks


def _two_sinks(tmp_path: Path, max_rows: int = 100, *, ack: bool = False) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite", max_rows, sinks=[SinkPolicy("mqtt", ack), SinkPolicy("fhir")])


def test_each_sink_has_its_own_pending_rows(tmp_path: Path) -> None:
    with _two_sinks(tmp_path) as box:
        a, b = (box.add("t", body(i), i, now_wall=T0) for i in ("a", "b"))
        box.mark_published(a, sink="mqtt", now_wall=T0 + 1)
        assert [r.seq for r in box.pending(10, sink="mqtt")] == [b]
        assert [r.seq for r in box.pending(10, sink="fhir")] == [a, b]
        assert box.pending_count() == 2 and box.pending_count(sink="mqtt") == 1
        stats = box.stats(T0 + 2)
        assert stats.pending == 2 and dict(stats.pending_by_sink) == {"mqtt": 1, "fhir": 2}
        box.mark_published_many([a, b], sink="fhir", now_wall=T0 + 3)
        assert box.pending_count() == 1 and box.oldest_pending_age_s(T0 + 10) == 10.0


def test_cleanup_deletes_a_row_only_once_every_configured_sink_delivered_it(tmp_path: Path) -> None:
    with _two_sinks(tmp_path) as box:
        seq = box.add("t", body("a"), "a", now_wall=T0)
        box.mark_published(seq, sink="mqtt", now_wall=T0)
        assert box.cleanup(0.0, now_wall=T0 + 100) == 0, "fhir has not delivered it"
        box.mark_published(seq, sink="fhir", now_wall=T0 + 50)
        assert box.cleanup(60.0, now_wall=T0 + 100) == 0, "delivered to fhir only 50 s ago"
        assert box.cleanup(60.0, now_wall=T0 + 111) == 1
        assert box.deliveries(seq) == []


def test_cleanup_with_acks_waits_for_the_integrator_ack(tmp_path: Path) -> None:
    with _two_sinks(tmp_path, ack=True) as box:
        seq = box.add("t", body("a"), "a", now_wall=T0)
        box.mark_published(seq, sink="mqtt", now_wall=T0)
        box.mark_published(seq, sink="fhir", now_wall=T0)
        assert box.cleanup(0.0, now_wall=T0 + 100) == 0
        assert not box.mark_acked("a", token("a"), sink="fhir"), "acks are the mqtt sink's"
        assert box.mark_acked("a", token("a"), now_wall=T0 + 1)
        assert box.cleanup(0.0, now_wall=T0 + 100) == 1


def test_a_refusal_stops_one_sink_only_and_does_not_pin_the_row(tmp_path: Path) -> None:
    """A FHIR server answering 422 for an alert will answer 422 again: that sink stops offering it, MQTT still
    delivers it, and the row can be cleaned up (its refusal stays recorded until then)."""
    with _two_sinks(tmp_path) as box:
        seq = box.add("t", body("a"), "a", now_wall=T0)
        assert box.mark_rejected_many({seq: "HTTP 422: invalid"}, sink="fhir", now_wall=T0 + 1) == 1
        assert box.pending(10, sink="fhir") == [] and [r.seq for r in box.pending(10)] == [seq]
        fhir = next(d for d in box.deliveries(seq) if d.sink == "fhir")
        assert fhir.rejected_wall == T0 + 1 and fhir.last_error == "HTTP 422: invalid" and fhir.attempts == 1
        assert box.cleanup(0.0, now_wall=T0 + 100) == 0, "mqtt still owes it"
        box.mark_published(seq, now_wall=T0 + 2)
        assert box.cleanup(0.0, now_wall=T0 + 100) == 1


def test_a_failed_try_is_recorded_and_the_row_stays_pending(tmp_path: Path) -> None:
    with _two_sinks(tmp_path) as box:
        seq = box.add("t", body("a"), "a", now_wall=T0)
        assert box.mark_failed(seq, "connection refused", sink="fhir", retry_wall=T0 + 30)
        assert box.mark_failed(seq, "HTTP 503", sink="fhir", retry_wall=T0 + 60)
        fhir = next(d for d in box.deliveries(seq) if d.sink == "fhir")
        assert (fhir.attempts, fhir.last_error, fhir.next_attempt_wall) == (2, "HTTP 503", T0 + 60)
        assert [r.seq for r in box.pending(10, sink="fhir")] == [seq]
        box.mark_published(seq, sink="fhir", now_wall=T0 + 61)
        fhir = next(d for d in box.deliveries(seq) if d.sink == "fhir")
        assert (fhir.attempts, fhir.last_error, fhir.next_attempt_wall) == (3, None, None)


def test_a_full_outbox_evicts_only_rows_every_sink_finished(tmp_path: Path) -> None:
    with _two_sinks(tmp_path, max_rows=2) as box:
        a = box.add("t", b"x", "a")
        b = box.add("t", b"x", "b")
        box.mark_published_many([a, b], sink="mqtt")
        with pytest.raises(OutboxFullError):
            box.add("t", b"x", "c")  # the fhir server has neither yet
        box.mark_published(b, sink="fhir")
        box.add("t", b"x", "c")
        assert [r.alert_id for r in box.pending(10, sink="fhir")] == ["a", "c"]


def test_a_removed_sink_no_longer_holds_rows_and_an_added_one_gets_new_rows_only(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with _two_sinks(tmp_path) as box:
        old = box.add("t", b"x", "old", now_wall=T0)
        box.mark_published(old, sink="mqtt", now_wall=T0)
    with Outbox(path, 100) as box:  # fhir switched off: only mqtt counts
        assert box.pending_count() == 0
        assert box.cleanup(0.0, now_wall=T0 + 1) == 1
        kept = box.add("t", b"x", "mqtt-only", now_wall=T0)
    with _two_sinks(tmp_path) as box:  # fhir back on: owed what is stored from now on
        assert box.pending(10, sink="fhir") == []
        new = box.add("t", b"x", "new", now_wall=T0)
        assert [r.seq for r in box.pending(10, sink="fhir")] == [new]
        assert [r.seq for r in box.pending(10)] == [kept, new]


def test_sink_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sink name"):
        SinkPolicy("fhir'; DROP TABLE outbox; --")
    with pytest.raises(ValueError, match="unique"):
        Outbox(tmp_path / "o.sqlite", 10, sinks=[SinkPolicy("mqtt"), SinkPolicy("mqtt")])
    with pytest.raises(ValueError, match="ack_required"):
        Outbox(tmp_path / "o.sqlite", 10, ack_required=True, sinks=[SinkPolicy("mqtt")])


def test_an_outbox_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=4")
    with pytest.raises(OutboxStorageError, match="newer gaitwatch"):
        Outbox(path, 10)


def test_state_directory_deleted_under_the_outbox_is_written_back_with_every_row(tmp_path: Path) -> None:
    """An admin's ``rm -rf`` of the state directory: SQLite would keep writing to the deleted inode and the
    pending alerts would vanish at the next restart. The next write rewrites the file from the open copy."""
    state = tmp_path / "state"
    state.mkdir()
    path = state / "outbox.sqlite"
    with Outbox(path, 100, ack_required=True) as box:
        seqs = [box.add("t", body(f"a{i}"), f"a{i}", now_wall=T0 + i) for i in range(5)]
        box.mark_published_many(seqs[:2], now_wall=T0 + 10)
        shutil.rmtree(state)
        later = box.add("t", body("after-rm"), "after-rm", now_wall=T0 + 20)
        assert path.is_file(), "the outbox file is back where the daemon's next start looks for it"
        assert later == seqs[-1] + 1
        assert box.mark_published(later, now_wall=T0 + 21)
    with Outbox(path, 100, ack_required=True) as reopened:  # the next start
        assert [r.alert_id for r in reopened.unacked(T0 + 100, 10)] == ["a0", "a1", "after-rm"]
        assert [r.seq for r in reopened.pending(10)] == seqs[2:]
        assert reopened.add("t", body("next"), "next") == later + 1, "seq keeps growing"


def test_outbox_file_replaced_under_the_outbox_refuses_writes_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with make(tmp_path) as box:
        box.add("t", b"x", "a0", now_wall=T0)
        path.unlink()
        with sqlite3.connect(path) as other:
            other.execute("CREATE TABLE foreign_table (x)")
        with pytest.raises(OutboxStorageError, match="replaced by another") as err:
            box.add("t", b"x", "a1", now_wall=T0)
        assert str(path) in str(err.value)
        assert [r.alert_id for r in box.pending(10)] == ["a0"], "the backlog is still readable"


def test_outbox_deleted_where_it_cannot_be_written_back_is_a_storage_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / "outbox.sqlite"
    with Outbox(path, 10) as box:
        box.add("t", b"x", "a0", now_wall=T0)
        shutil.rmtree(state)
        state.write_text("a file where the state directory was")
        with pytest.raises(OutboxStorageError, match="deleted while gaitwatch was running") as err:
            box.add("t", b"x", "a1", now_wall=T0)
        assert str(path) in str(err.value)


def test_a_symlink_put_where_the_deleted_outbox_was_is_never_written_through(tmp_path: Path) -> None:
    """Someone who can write the state directory plants a dangling link at the outbox's path after deleting
    it: the copy must not land at the link's target."""
    path = tmp_path / "outbox.sqlite"
    target = tmp_path / "elsewhere.db"
    with make(tmp_path) as box:
        box.add("t", b"x", "a0", now_wall=T0)
        path.unlink()
        path.symlink_to(target)
        with pytest.raises(OutboxStorageError, match="replaced by another"):
            box.add("t", b"x", "a1", now_wall=T0)
        assert not target.exists()
