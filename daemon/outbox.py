"""The alert outbox: alerts are committed to SQLite before any network I/O, then delivered to every sink in
``seq`` order.

Why: a QoS 1 PUBACK only means the broker took a message, and a disconnected client has nowhere to put one.
Writing every alert to disk first means a broker outage, a network cut or a daemon crash delays alerts
instead of losing them; a sink's drainer (``gaitwatch.daemon.drainer.SinkDrainer``; MQTT's is
``gaitwatch.daemon.mqtt.OutboxDrainer``) marks a row delivered to its sink only after the receiver took it.

Sinks (schema 3): one ``outbox`` row per alert and one ``deliveries`` row per (alert, sink) it is owed to. The
outbox is built with the configured sinks (``SinkPolicy``: a name and whether an integrator ack is required
on top of the receiver's own acknowledgement); ``add`` makes the alert owed to each of them. Every
per-delivery method takes ``sink`` (default ``"mqtt"``, the only sink before schema 3), and "published"
there means "delivered to that sink" (MQTT: PUBACK; FHIR: a 2xx answer). A row counts as *done* when every
configured sink it is owed to has delivered it (and, where acks are required, the integrator acknowledged
it), or refused it for good (``mark_rejected_many``: a FHIR 4xx; retrying the same request cannot succeed);
only done rows are evicted or cleaned up. A sink added to the config later is owed only alerts stored after
that; a sink removed from it no longer holds rows back.

Schema history (``PRAGMA user_version``): 1 the first outbox; 2 every undelivered alert body carries an
``ack_token`` (ack contract v2); 3 per-sink delivery state: the ``published_wall``/``acked_wall`` columns of
``outbox`` moved to ``deliveries`` rows of sink ``mqtt``, migrated in place in one transaction when a newer
daemon opens an older file.

Durability: WAL journal with ``synchronous=FULL``, so ``add`` has fsync'ed the row when it returns and a
power cut right after cannot lose it (``NORMAL`` would be faster but may lose the last commits on power
loss). ``seq`` is SQLite's AUTOINCREMENT key: it only ever grows, also across restarts and after old rows
are deleted, so it is a per-host sequence number integrators can order by.

Size: at most ``max_rows`` rows. When the table is full, ``add`` first deletes the oldest delivered rows; if
every row is still undelivered it raises ``OutboxFullError`` and stores nothing; the caller must make that
loud (metric and technical alert), never drop silently. The technical alert itself is stored with
``over_limit=True``, which may exceed ``max_rows`` by the few rows such alerts take (one start and one end per
overflow episode). Larger ``max_rows`` rides out longer outages at the
cost of disk space (~1 kB per alert) and a longer backlog burst when the broker returns.

Threads: the API is synchronous and blocking (each write waits for an fsync); call it through
``asyncio.to_thread``, never on the event loop. An internal lock serializes calls, so the pipeline's
``add`` and a drainer's ``mark_published`` may run in different worker threads at once. One process owns
the file.

A file deleted under the running daemon (an admin's ``rm -rf`` of the state directory): SQLite keeps writing
to the unlinked inode without a word, and every alert still pending would vanish at the next restart. So each
write transaction first checks that ``path`` still names the file that was opened (device and inode). When the
file is gone, the outbox writes a complete copy of itself back to ``path`` (``VACUUM INTO`` from the open
connection, which still reads the deleted file), recreating the directory if it can, and carries on there: no
row, ``seq`` or delivery state is lost. When another file has taken its place, or the copy cannot be written,
the write fails with ``OutboxStorageError`` naming the cause, and the daemon holds alerts in memory and raises
``outbox_unavailable`` as for any storage fault.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

from gaitwatch.daemon.payloads import ack_token_of, with_ack_token

log = logging.getLogger(__name__)

# The sink every outbox had before schema 3 (and the default of every per-delivery method).
MQTT_SINK: Final = "mqtt"

_SCHEMA_VERSION: Final = 3
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id       TEXT    NOT NULL UNIQUE,
    topic          TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    created_wall   REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq             INTEGER NOT NULL,
    sink            TEXT    NOT NULL,
    delivered_at    REAL,
    acked_at        REAL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    rejected_at     REAL,
    last_error      TEXT,
    PRIMARY KEY (seq, sink)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_open ON deliveries (sink, seq)
    WHERE delivered_at IS NULL AND rejected_at IS NULL;
CREATE TABLE IF NOT EXISTS write_probe (data BLOB NOT NULL);
"""
# Bytes written (and deleted again) by ``check_writable``: room for a few dozen alerts, so a daemon never
# reports ready on a disk that cannot take its first alert.
_PROBE_BYTES: Final = 64 * 1024
_ROW_COLUMNS: Final = "o.seq, o.alert_id, o.topic, o.payload, o.created_wall"
_DELIVERY_COLUMNS: Final = "seq, sink, delivered_at, acked_at, attempts, next_attempt_at, rejected_at, last_error"
# Sink names go into SQL text (as quoted literals) and into metric-free log lines: keep them plain.
_SINK_NAME: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

# What SQLite's primary error codes mean for someone fixing the machine.
_EXPLAIN: Final = {
    "SQLITE_FULL": "the disk (or the state directory's quota) is full",
    "SQLITE_READONLY": "the file or its directory is read-only",
    "SQLITE_CANTOPEN": "cannot open the file (missing directory, a directory in its place, or no permission)",
    "SQLITE_NOTADB": "the file is not an SQLite database (corrupt or a foreign file)",
    "SQLITE_CORRUPT": "the database is corrupt",
    "SQLITE_IOERR": "an I/O error from the disk",
    "SQLITE_BUSY": "the file is locked by another process (another gaitwatch on the same state directory?)",
    "SQLITE_PERM": "permission denied",
}


class OutboxError(Exception):
    """Base class: something about the outbox at ``path``."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class OutboxFullError(OutboxError):
    """Every one of ``max_rows`` rows is still undelivered; the new alert was NOT stored."""

    def __init__(self, path: Path, max_rows: int, alert_id: str) -> None:
        super().__init__(
            path, f"outbox {path} is full: {max_rows} alerts are undelivered; alert {alert_id} was not stored"
        )
        self.max_rows = max_rows


class OutboxStorageError(OutboxError):
    """The database cannot be opened, read or written (corrupt, unwritable, disk full, locked)."""


@dataclass(frozen=True, slots=True)
class SinkPolicy:
    """A configured sink, as far as the outbox is concerned: its ``name`` (``mqtt``, ``fhir``, ...) and whether
    a delivery counts as finished only once an integrator acknowledged it (MQTT ack mode). Without acks, the
    receiver's own acknowledgement (PUBACK, HTTP 2xx) ends the outbox's responsibility for that sink."""

    name: str
    ack_required: bool = False

    def __post_init__(self) -> None:
        if not _SINK_NAME.match(self.name):
            raise ValueError(f"sink name must match {_SINK_NAME.pattern}; got {self.name!r}")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One stored message. Wall times are seconds since the epoch. Read for a sink (``pending``,
    ``unacked``), ``published_wall`` is when that sink took it (None: not yet) and ``acked_wall`` when an
    integrator acknowledged it (ack mode only); rows read otherwise carry None in both."""

    seq: int
    alert_id: str
    topic: str
    payload: bytes
    created_wall: float
    published_wall: float | None = None
    acked_wall: float | None = None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """One row of ``deliveries``: what one sink has done with one alert.

    ``attempts`` counts tries (successful or not); ``next_attempt_wall`` and ``last_error`` say when the sink's
    drainer retries after a failed try and why it failed (None after a success). ``rejected_wall``: the
    receiver refused the alert for good (it is not retried by this sink; the other sinks still deliver it).
    """

    seq: int
    sink: str
    delivered_wall: float | None = None
    acked_wall: float | None = None
    attempts: int = 0
    next_attempt_wall: float | None = None
    rejected_wall: float | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """A consistent snapshot of the outbox's size, for metrics and the status line."""

    pending: int  # not yet delivered to every sink it is owed to
    oldest_pending_age_s: float  # 0.0 when nothing is pending
    unacked: int  # ack mode: taken by the receiver, not yet acknowledged by an integrator
    rows: int  # all rows, delivered or not
    # Per configured sink: rows it still owes (not compared: the four totals above are the snapshot's identity).
    pending_by_sink: Mapping[str, int] = field(default_factory=dict, compare=False)


def _storage_error(path: Path, doing: str, exc: sqlite3.Error) -> OutboxStorageError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    primary = next((k for k in _EXPLAIN if name == k or name.startswith(k + "_")), "")
    reason = _EXPLAIN.get(primary, "database error")
    code = name or type(exc).__name__
    return OutboxStorageError(path, f"outbox {path}: cannot {doing}: {reason} ({code}: {exc})")


def _sql_list(names: Sequence[str]) -> str:
    """Validated sink names as an SQL list of literals (``('mqtt', 'fhir')``; ``(NULL)`` matches nothing)."""
    return "(" + ", ".join(f"'{n}'" for n in names) + ")" if names else "(NULL)"


class Outbox:
    """SQLite-backed, bounded, durable queue of outgoing alerts (see the module docstring).

    ``sinks``: the configured sinks every new alert is owed to; by default MQTT alone, with
    ``ack_required`` (an integrator ack topic: a row counts as delivered only once acknowledged, so
    published-but-unacknowledged rows are neither evicted nor cleaned up, and ``unacked`` lists them for
    re-publishing). Give either ``sinks`` or ``ack_required``, not both.
    """

    def __init__(
        self,
        path: Path,
        max_rows: int,
        *,
        ack_required: bool = False,
        sinks: Sequence[SinkPolicy] | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1; got {max_rows}")
        if sinks is not None and ack_required:
            raise ValueError("give ack_required through sinks (SinkPolicy(..., ack_required=True))")
        policies = tuple(sinks) if sinks is not None else (SinkPolicy(MQTT_SINK, ack_required),)
        if len({s.name for s in policies}) != len(policies):
            raise ValueError(f"sink names must be unique; got {[s.name for s in policies]}")
        self.path = path
        self.max_rows = max_rows
        self.sinks = policies
        self.ack_required = any(s.ack_required for s in policies)
        self._owed = _sql_list([s.name for s in policies])
        self._acked = _sql_list([s.name for s in policies if s.ack_required])
        self._lock = threading.Lock()
        if not path.parent.is_dir():
            raise OutboxStorageError(path, f"outbox {path}: directory {path.parent} does not exist")
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves; no implicit transaction is left open.
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        except sqlite3.Error as exc:
            raise _storage_error(path, "open", exc) from exc
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxStorageError(
                    path, f"outbox {path}: WAL journal unavailable (got {mode!r}); use a local filesystem"
                )
            self._conn.execute("PRAGMA synchronous=FULL")
            check = self._conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise OutboxStorageError(path, f"outbox {path}: the database is corrupt ({check})")
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            if version > _SCHEMA_VERSION:
                raise OutboxStorageError(
                    path,
                    f"outbox {path}: written by a newer gaitwatch (schema {version}; this one knows "
                    f"{_SCHEMA_VERSION}); upgrade, or salvage it with `gaitwatch outbox salvage` of that version",
                )
            self._conn.executescript(_SCHEMA)
            legacy = {"published_wall", "acked_wall"} <= self._outbox_columns()
            if version < 2 and legacy:
                self._migrate_ack_tokens()
            if legacy:
                self._migrate_to_deliveries()
            self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self._conn.close()
            raise _storage_error(path, "open", exc) from exc
        except OutboxStorageError:
            self._conn.close()
            raise
        # The file this connection writes to: see "A file deleted under the running daemon" above.
        self._file_id = _file_identity(path)

    def _outbox_columns(self) -> set[str]:
        return {str(r[1]) for r in self._conn.execute("PRAGMA table_info(outbox)").fetchall()}

    def _migrate_ack_tokens(self) -> None:
        """Schema 1 -> 2: alerts stored before ack tokens existed get one, so that they can still be
        acknowledged (ack contract v2) instead of being re-sent forever in ack mode."""
        self._conn.execute("BEGIN IMMEDIATE")
        rows = self._conn.execute("SELECT seq, payload FROM outbox WHERE acked_wall IS NULL").fetchall()
        for seq, payload in rows:
            migrated = with_ack_token(bytes(payload))
            if migrated != bytes(payload):
                self._conn.execute("UPDATE outbox SET payload = ? WHERE seq = ?", (migrated, seq))
        self._conn.execute("COMMIT")

    def _migrate_to_deliveries(self) -> None:
        """Schema 2 -> 3, in place and in one transaction (a crash leaves schema 2 intact): every row's
        ``published_wall``/``acked_wall`` becomes its ``mqtt`` delivery (the only sink there was), then the two
        columns and their index leave ``outbox``. ``seq`` values and the AUTOINCREMENT high-water mark stay."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR IGNORE INTO deliveries (seq, sink, delivered_at, acked_at, attempts) "
                "SELECT seq, ?, published_wall, acked_wall, CASE WHEN published_wall IS NULL THEN 0 ELSE 1 END "
                "FROM outbox",
                (MQTT_SINK,),
            )
            conn.execute("DROP INDEX IF EXISTS outbox_unpublished")
            conn.execute("ALTER TABLE outbox DROP COLUMN published_wall")
            conn.execute("ALTER TABLE outbox DROP COLUMN acked_wall")
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Write and delete ``_PROBE_BYTES`` in one committed transaction (through the WAL, with fsync).

        Opening an existing database writes nothing, so without this a daemon could start on a full or
        read-only disk and fail only at its first alert. Raises ``OutboxStorageError`` naming the cause. The
        probe uses its own table, so it never consumes an alert ``seq``.
        """
        with self._transaction("write") as conn:
            conn.execute("INSERT INTO write_probe (data) VALUES (zeroblob(?))", (_PROBE_BYTES,))
            conn.execute("DELETE FROM write_probe")

    def add(
        self,
        topic: str,
        payload: bytes,
        alert_id: str,
        *,
        now_wall: float | None = None,
        over_limit: bool = False,
    ) -> int:
        """Store a message durably, owed to every configured sink, and return its ``seq``; the row is
        fsync'ed when this returns.

        Idempotent on ``alert_id``: adding an id that is already stored returns the existing row's ``seq`` and
        changes nothing, so a caller that is unsure whether a previous ``add`` went through may repeat it.
        Raises ``OutboxFullError`` when ``max_rows`` undelivered rows leave no room, ``OutboxStorageError``
        when the disk refuses the write. ``over_limit=True`` stores even then: only for the technical alert
        that reports the overflow.
        """
        created = time.time() if now_wall is None else now_wall
        with self._transaction(f"store alert {alert_id}"):
            return self._add_locked(topic, payload, alert_id, created, over_limit)

    def add_many(self, items: Sequence[tuple[str, bytes, str, float]]) -> list[int]:
        """Store ``(topic, payload, alert_id, created_wall)`` messages in one transaction (one fsync) and
        return their ``seq`` values, in order; all or none are stored. For committing a backlog (alerts held
        in memory while the disk was full): one transaction per alert would write a WAL page per alert and
        fill a nearly full disk again before the backlog is in. Same rules as ``add`` (idempotent on
        ``alert_id``; ``OutboxFullError``, ``OutboxStorageError``)."""
        with self._transaction(f"store {len(items)} alerts"):
            return [
                self._add_locked(topic, payload, alert_id, created, False)
                for topic, payload, alert_id, created in items
            ]

    def restore(
        self, rows: Sequence[OutboxRow], deliveries: Sequence[DeliveryState] = (), *, last_seq: int = 0
    ) -> None:
        """Write rows salvaged from a damaged outbox with their original ``seq`` and delivery state, in one
        transaction; new rows then continue above ``max(last_seq, highest restored seq)``. A row without any
        state in ``deliveries`` (its state was unreadable) is owed to every configured sink again: re-sent, a
        duplicate at worst, never lost. The rows' own ``published_wall``/``acked_wall`` are not read. Only into
        a fresh outbox (``gaitwatch outbox salvage``)."""
        known = {d.seq for d in deliveries}
        states = [*deliveries, *(DeliveryState(r.seq, s.name) for r in rows if r.seq not in known for s in self.sinks)]
        with self._transaction("restore salvaged rows") as conn:
            conn.executemany(
                "INSERT INTO outbox (seq, alert_id, topic, payload, created_wall) VALUES (?, ?, ?, ?, ?)",
                [(r.seq, r.alert_id, r.topic, r.payload, r.created_wall) for r in rows],
            )
            conn.executemany(
                f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.seq,
                        d.sink,
                        d.delivered_wall,
                        d.acked_wall,
                        d.attempts,
                        d.next_attempt_wall,
                        d.rejected_wall,
                        d.last_error,
                    )
                    for d in states
                ],
            )
            top = max([last_seq, *(r.seq for r in rows)])
            # AUTOINCREMENT's high-water mark: never hand out a seq an integrator may already have seen.
            conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'outbox'", (top,))
            if conn.execute("SELECT changes()").fetchone()[0] == 0:
                conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (top,))

    @contextlib.contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: committed (fsync'ed) when the block ends, rolled back on any
        error; an SQLite error becomes an ``OutboxStorageError`` that says what was being done."""
        with self._lock:
            self._ensure_on_disk()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _storage_error(self.path, doing, exc) from exc
            except BaseException:
                self._rollback()
                raise

    def _ensure_on_disk(self) -> None:
        """Before a write: make sure ``path`` is still the file this connection writes to (under the lock).

        Deleted (``rm`` of the file or of the whole state directory): write a copy of the open database back to
        ``path`` and reopen it there, so nothing pending is lost at the next restart. Replaced by another file,
        or not recreatable: ``OutboxStorageError`` naming what to do; the connection stays on the old inode, so
        the daemon keeps reading its backlog while it holds new alerts in memory."""
        current = _file_identity(self.path)
        if current == self._file_id:
            return
        if current is not None:
            raise OutboxStorageError(
                self.path,
                f"outbox {self.path}: the file was replaced by another one while gaitwatch was running; new "
                "alerts are held in memory; restore the original file or restart gaitwatch to adopt the new one",
            )
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._conn.execute("VACUUM INTO ?", (str(self.path),))
            fresh = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxStorageError(
                self.path,
                f"outbox {self.path}: the file was deleted while gaitwatch was running and could not be written "
                f"again ({exc}); new alerts are held in memory; recreate {self.path.parent} (writable by "
                "gaitwatch) or restart the service",
            ) from exc
        try:
            fresh.execute("PRAGMA journal_mode=WAL")
            fresh.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            fresh.close()
            raise _storage_error(self.path, "reopen", exc) from exc
        self._conn.close()
        self._conn = fresh
        self._file_id = _file_identity(self.path)
        rows = self._count()
        log.warning("outbox %s was deleted while running; rewritten from the open copy, rows=%d", self.path, rows)

    def _count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def _rollback(self) -> None:
        """Abandon a failed transaction; the error that caused it is what the caller reports."""
        if self._conn.in_transaction:
            # SQLite may already have rolled back (e.g. on SQLITE_FULL); the original error stands.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _add_locked(self, topic: str, payload: bytes, alert_id: str, created: float, over_limit: bool) -> int:
        existing = self._conn.execute("SELECT seq FROM outbox WHERE alert_id = ?", (alert_id,)).fetchone()
        if existing is not None:
            return int(existing[0])
        rows = int(self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        excess = rows - self.max_rows + 1
        if excess > 0 and not over_limit:
            victims = [
                int(r[0])
                for r in self._conn.execute(
                    f"SELECT seq FROM outbox WHERE {self._done_sql()} ORDER BY seq LIMIT ?", (excess,)
                ).fetchall()
            ]
            if len(victims) < excess:
                raise OutboxFullError(self.path, self.max_rows, alert_id)
            self._delete_locked(victims)
        cur = self._conn.execute(
            "INSERT INTO outbox (alert_id, topic, payload, created_wall) VALUES (?, ?, ?, ?)",
            (alert_id, topic, bytes(payload), created),
        )
        assert cur.lastrowid is not None  # an INSERT into a rowid table always sets it
        seq = int(cur.lastrowid)
        self._conn.executemany("INSERT INTO deliveries (seq, sink) VALUES (?, ?)", [(seq, s.name) for s in self.sinks])
        return seq

    def _delete_locked(self, seqs: Sequence[int]) -> None:
        self._conn.executemany("DELETE FROM deliveries WHERE seq = ?", [(s,) for s in seqs])
        self._conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def _unfinished_sql(self, d: str = "d") -> str:
        """SQL condition on a ``deliveries`` row (alias ``d``) that a configured sink still has to finish:
        neither refused for good nor delivered (and, for an ack sink, acknowledged)."""
        return (
            f"{d}.sink IN {self._owed} AND {d}.rejected_at IS NULL AND "
            f"({d}.delivered_at IS NULL OR ({d}.sink IN {self._acked} AND {d}.acked_at IS NULL))"
        )

    def _done_sql(self) -> str:
        """SQL condition of ``outbox`` rows the outbox is finished with: no configured sink owes them."""
        return f"NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = outbox.seq AND {self._unfinished_sql()})"

    def _finished_at_sql(self, d: str = "d") -> str:
        """When a sink finished a delivery (refused, acknowledged in ack mode, else delivered)."""
        acked = f"CASE WHEN {d}.sink IN {self._acked} THEN {d}.acked_at ELSE {d}.delivered_at END"
        return f"COALESCE({d}.rejected_at, {acked})"

    def mark_published(self, seq: int, *, sink: str = MQTT_SINK, now_wall: float | None = None) -> bool:
        """Record that ``sink`` took ``seq`` (MQTT: call it only after the PUBACK); False if no such row is owed
        to that sink."""
        return self.mark_published_many([seq], sink=sink, now_wall=now_wall) == 1

    def mark_published_many(self, seqs: Sequence[int], *, sink: str = MQTT_SINK, now_wall: float | None = None) -> int:
        """``mark_published`` for several rows in one transaction (one fsync); returns rows updated."""
        when = time.time() if now_wall is None else now_wall
        with self._transaction(f"mark rows delivered to {sink}") as conn:
            return sum(
                conn.execute(
                    "UPDATE deliveries SET delivered_at = ?, attempts = attempts + 1, next_attempt_at = NULL, "
                    "last_error = NULL WHERE seq = ? AND sink = ?",
                    (when, s, sink),
                ).rowcount
                for s in seqs
            )

    def mark_failed(self, seq: int, error: str, *, sink: str, retry_wall: float | None) -> bool:
        """Record a failed try of ``sink`` on ``seq``: one more attempt, why, and when its drainer tries
        again (it stays pending: a duplicate at worst, never a loss)."""
        with self._transaction(f"record a failed delivery to {sink}") as conn:
            return (
                conn.execute(
                    "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                    "WHERE seq = ? AND sink = ? AND delivered_at IS NULL",
                    (error[:500], retry_wall, seq, sink),
                ).rowcount
                == 1
            )

    def mark_rejected_many(self, rejections: Mapping[int, str], *, sink: str, now_wall: float | None = None) -> int:
        """Record that ``sink``'s receiver refused these rows for good (``{seq: reason}``, e.g. a FHIR 422):
        that sink stops trying them and no longer holds them back from clean-up; the other sinks still
        deliver them. Returns rows updated."""
        when = time.time() if now_wall is None else now_wall
        with self._transaction(f"record rows refused by {sink}") as conn:
            return sum(
                conn.execute(
                    "UPDATE deliveries SET rejected_at = ?, attempts = attempts + 1, last_error = ?, "
                    "next_attempt_at = NULL WHERE seq = ? AND sink = ? AND delivered_at IS NULL",
                    (when, reason[:500], seq, sink),
                ).rowcount
                for seq, reason in rejections.items()
            )

    def mark_acked(
        self, alert_id: str, ack_token: str, *, sink: str = MQTT_SINK, now_wall: float | None = None
    ) -> bool:
        """Record an integrator's acknowledgement; see ``mark_acked_many``."""
        return self.mark_acked_many([(alert_id, ack_token)], sink=sink, now_wall=now_wall) == 1

    def mark_acked_many(
        self, claims: Sequence[tuple[str, str]], *, sink: str = MQTT_SINK, now_wall: float | None = None
    ) -> int:
        """Record ``(alert_id, ack_token)`` acknowledgements in one transaction (one fsync); returns how many
        rows it newly acknowledged.

        An ack counts only for an alert that ``sink`` already delivered (an ack cannot arrive before the alert
        unless someone predicted its id) and whose stored payload carries the same ``ack_token`` (a secret that
        appears only in that alert's payload). Everything else counts 0: unknown ids (another host's, or
        cleaned up), already acknowledged ones, undelivered ones, wrong tokens, and any ack for a sink that
        takes no acks.
        """
        when = time.time() if now_wall is None else now_wall
        updated = 0
        if not any(s.name == sink and s.ack_required for s in self.sinks):
            return 0
        with self._transaction("record acknowledgements") as conn:
            for alert_id, token in claims:
                row = conn.execute(
                    "SELECT o.seq, o.payload FROM outbox o JOIN deliveries d ON d.seq = o.seq AND d.sink = ? "
                    "WHERE o.alert_id = ? AND d.acked_at IS NULL AND d.delivered_at IS NOT NULL",
                    (sink, alert_id),
                ).fetchone()
                stored = ack_token_of(bytes(row[1])) if row is not None else None
                if stored is None or not hmac.compare_digest(stored.encode(), token.encode()):
                    continue
                updated += conn.execute(
                    "UPDATE deliveries SET acked_at = ? WHERE seq = ? AND sink = ?", (when, int(row[0]), sink)
                ).rowcount
        return int(updated)

    def cleanup(self, older_than_s: float, *, now_wall: float | None = None) -> int:
        """Delete rows that every configured sink finished more than ``older_than_s`` ago (delivered, and
        acknowledged where acks are required, or refused for good); a row some sink still owes is never
        deleted. Returns the number of rows deleted. ``seq`` keeps growing after a cleanup."""
        cutoff = (time.time() if now_wall is None else now_wall) - older_than_s
        with self._transaction("clean up") as conn:
            seqs = [
                int(r[0])
                for r in conn.execute(
                    f"SELECT seq FROM outbox WHERE created_wall < ? AND {self._done_sql()} AND NOT EXISTS "
                    f"(SELECT 1 FROM deliveries d WHERE d.seq = outbox.seq AND d.sink IN {self._owed} "
                    f"AND {self._finished_at_sql()} >= ?)",
                    (cutoff, cutoff),
                ).fetchall()
            ]
            self._delete_locked(seqs)
            return len(seqs)

    # -- reading ---------------------------------------------------------------------------------------------

    def pending(self, limit: int, *, sink: str = MQTT_SINK) -> list[OutboxRow]:
        """Up to ``limit`` rows ``sink`` has yet to deliver (and has not refused), in ``seq`` order."""
        return self._rows(
            f"SELECT {_ROW_COLUMNS}, d.delivered_at, d.acked_at FROM deliveries d JOIN outbox o ON o.seq = d.seq "
            "WHERE d.sink = ? AND d.delivered_at IS NULL AND d.rejected_at IS NULL ORDER BY d.seq LIMIT ?",
            (sink, limit),
        )

    def unacked(self, published_before_wall: float, limit: int, *, sink: str = MQTT_SINK) -> list[OutboxRow]:
        """Ack mode: rows ``sink`` delivered at or before ``published_before_wall`` but no integrator
        acknowledged, in ``seq`` order, to be re-sent with the same ``alert_id``."""
        return self._rows(
            f"SELECT {_ROW_COLUMNS}, d.delivered_at, d.acked_at FROM deliveries d JOIN outbox o ON o.seq = d.seq "
            "WHERE d.sink = ? AND d.acked_at IS NULL AND d.delivered_at IS NOT NULL AND d.delivered_at <= ? "
            "ORDER BY d.seq LIMIT ?",
            (sink, published_before_wall, limit),
        )

    def deliveries(self, seq: int) -> list[DeliveryState]:
        """Every sink's delivery state of ``seq`` (sorted by sink name); empty for an unknown ``seq``."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE seq = ? ORDER BY sink", (seq,)
                ).fetchall()
            except sqlite3.Error as exc:
                raise _storage_error(self.path, "read", exc) from exc
        return [delivery_state(r) for r in rows]

    def pending_count(self, *, sink: str | None = None) -> int:
        """Rows not yet delivered to every configured sink (to ``sink`` alone, if given)."""
        if sink is not None:
            return int(
                self._scalar(
                    "SELECT COUNT(*) FROM deliveries WHERE sink = ? AND delivered_at IS NULL AND rejected_at IS NULL",
                    (sink,),
                )
                or 0
            )
        return int(self._scalar(f"SELECT COUNT(*) FROM outbox o WHERE {self._undelivered_sql()}", ()) or 0)

    def _undelivered_sql(self) -> str:
        """SQL condition on ``outbox o``: some configured sink has not delivered (nor refused) it yet."""
        return (
            "EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = o.seq AND "
            f"d.sink IN {self._owed} AND d.delivered_at IS NULL AND d.rejected_at IS NULL)"
        )

    def _unacked_sql(self) -> str:
        """SQL condition on ``outbox o``: an ack sink delivered it and no integrator acknowledged it yet."""
        return (
            "EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = o.seq AND d.sink IN "
            f"{self._acked} AND d.delivered_at IS NOT NULL AND d.acked_at IS NULL AND d.rejected_at IS NULL)"
        )

    def unacked_count(self) -> int:
        """Rows an ack sink delivered but no integrator acknowledged yet (meaningful in ack mode only)."""
        return int(self._scalar(f"SELECT COUNT(*) FROM outbox o WHERE {self._unacked_sql()}", ()) or 0)

    def oldest_pending_age_s(self, now_wall: float) -> float:
        """Seconds the oldest row some sink has not delivered has waited; 0.0 when nothing is pending."""
        created = self._scalar(f"SELECT MIN(created_wall) FROM outbox o WHERE {self._undelivered_sql()}", ())
        return 0.0 if created is None else max(0.0, now_wall - float(created))

    def stats(self, now_wall: float) -> OutboxStats:
        """Pending, oldest pending age, unacknowledged and total rows, read in one transaction."""
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                try:
                    pending, oldest, unacked, rows = self._conn.execute(
                        "SELECT "
                        f"(SELECT COUNT(*) FROM outbox o WHERE {self._undelivered_sql()}), "
                        f"(SELECT MIN(created_wall) FROM outbox o WHERE {self._undelivered_sql()}), "
                        f"(SELECT COUNT(*) FROM outbox o WHERE {self._unacked_sql()}), "
                        "(SELECT COUNT(*) FROM outbox)"
                    ).fetchone()
                    by_sink = dict(
                        self._conn.execute(
                            "SELECT sink, COUNT(*) FROM deliveries WHERE delivered_at IS NULL AND rejected_at IS NULL "
                            f"AND sink IN {self._owed} GROUP BY sink"
                        ).fetchall()
                    )
                finally:
                    self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _storage_error(self.path, "read", exc) from exc
        age = 0.0 if oldest is None else max(0.0, now_wall - float(oldest))
        per_sink = {s.name: int(by_sink.get(s.name, 0)) for s in self.sinks}
        # Without ack mode nobody acknowledges, so "unacknowledged" would just count delivered rows.
        return OutboxStats(int(pending), age, int(unacked) if self.ack_required else 0, int(rows), per_sink)

    def row_count(self) -> int:
        """All rows, delivered or not (bounded by ``max_rows``)."""
        return int(self._scalar("SELECT COUNT(*) FROM outbox", ()) or 0)

    def last_seq(self) -> int:
        """The highest ``seq`` ever given (deleted rows included): the next row gets ``last_seq() + 1``."""
        given = self._scalar("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'", ())
        return int(given or 0)

    def _scalar(self, sql: str, params: tuple[object, ...]) -> float | int | None:
        with self._lock:
            try:
                row = self._conn.execute(sql, params).fetchone()
            except sqlite3.Error as exc:
                raise _storage_error(self.path, "read", exc) from exc
        value = None if row is None else row[0]
        assert value is None or isinstance(value, int | float), value
        return value

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[OutboxRow]:
        with self._lock:
            try:
                rows = self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _storage_error(self.path, "read", exc) from exc
        return [
            OutboxRow(
                seq=int(r[0]),
                alert_id=str(r[1]),
                topic=str(r[2]),
                payload=bytes(r[3]),
                created_wall=float(r[4]),
                published_wall=None if r[5] is None else float(r[5]),
                acked_wall=None if r[6] is None else float(r[6]),
            )
            for r in rows
        ]


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the directory entry at ``path``, or None when there is none. The entry itself, not what
    a symbolic link points to: a link put where the deleted outbox was (even one pointing nowhere yet) counts as
    a replacement, so the outbox is never written back through it to a file elsewhere."""
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_dev, st.st_ino)


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def delivery_state(r: Sequence[object]) -> DeliveryState:
    """A ``deliveries`` row (columns in schema order) as a ``DeliveryState``; ``ValueError`` for a damaged one."""
    seq, sink, delivered, acked, attempts, next_attempt, rejected, error = r
    if not isinstance(seq, int) or not isinstance(sink, str) or not isinstance(attempts, int):
        raise ValueError("damaged delivery row")
    if error is not None and not isinstance(error, str):
        raise ValueError("damaged delivery row")
    return DeliveryState(
        seq,
        sink,
        _opt_float(delivered),
        _opt_float(acked),
        attempts,
        _opt_float(next_attempt),
        _opt_float(rejected),
        error,
    )
