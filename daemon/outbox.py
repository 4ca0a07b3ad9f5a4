"""The alert outbox: alerts are committed to SQLite before any network I/O, then published in ``seq`` order.

Why: a QoS 1 PUBACK only means the broker took a message, and a disconnected client has nowhere to put one.
Writing every alert to disk first means a broker outage, a network cut or a daemon crash delays alerts
instead of losing them; the drainer (``gaitwatch.daemon.mqtt.OutboxDrainer``) marks a row published only
after its PUBACK.

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
``add`` and the drainer's ``mark_published`` may run in different worker threads at once. One process owns
the file.
"""

from __future__ import annotations

import contextlib
import hmac
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from gaitwatch.daemon.payloads import ack_token_of, with_ack_token

# 1: the first outbox; 2: every undelivered alert body carries an ``ack_token`` (ack contract v2).
_SCHEMA_VERSION: Final = 2
_SCHEMA: Final = """
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
# Bytes written (and deleted again) by ``check_writable``: room for a few dozen alerts, so a daemon never
# reports ready on a disk that cannot take its first alert.
_PROBE_BYTES: Final = 64 * 1024
_COLUMNS: Final = "seq, alert_id, topic, payload, created_wall, published_wall, acked_wall"

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
class OutboxRow:
    """One stored message. Wall times are seconds since the epoch; ``published_wall`` is None until the broker
    acknowledged it, ``acked_wall`` None until an integrator acknowledged it (ack mode only)."""

    seq: int
    alert_id: str
    topic: str
    payload: bytes
    created_wall: float
    published_wall: float | None
    acked_wall: float | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """A consistent snapshot of the outbox's size, for metrics and the status line."""

    pending: int  # not yet acknowledged by the broker
    oldest_pending_age_s: float  # 0.0 when nothing is pending
    unacked: int  # ack mode: taken by the broker, not yet acknowledged by an integrator
    rows: int  # all rows, delivered or not


def _storage_error(path: Path, doing: str, exc: sqlite3.Error) -> OutboxStorageError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    primary = next((k for k in _EXPLAIN if name == k or name.startswith(k + "_")), "")
    reason = _EXPLAIN.get(primary, "database error")
    code = name or type(exc).__name__
    return OutboxStorageError(path, f"outbox {path}: cannot {doing}: {reason} ({code}: {exc})")


class Outbox:
    """SQLite-backed, bounded, durable queue of outgoing alerts (see the module docstring).

    ``ack_required``: with an integrator ack topic, a row counts as delivered only once acknowledged, so
    published-but-unacknowledged rows are neither evicted nor cleaned up (``unacked`` lists them for
    re-publishing). Without it, the broker's PUBACK is the end of the outbox's responsibility.
    """

    def __init__(self, path: Path, max_rows: int, *, ack_required: bool = False) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1; got {max_rows}")
        self.path = path
        self.max_rows = max_rows
        self.ack_required = ack_required
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
            self._conn.executescript(_SCHEMA)
            if version < 2:
                self._migrate_ack_tokens()
            self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self._conn.close()
            raise _storage_error(path, "open", exc) from exc
        except OutboxStorageError:
            self._conn.close()
            raise

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
        """Store a message durably and return its ``seq``; the row is fsync'ed when this returns.

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

    def restore(self, rows: Sequence[OutboxRow], *, last_seq: int = 0) -> None:
        """Write rows salvaged from a damaged outbox with their original ``seq`` and delivery state, in one
        transaction; new rows then continue above ``max(last_seq, highest restored seq)``. Only into a fresh
        outbox (``gaitwatch outbox salvage``)."""
        with self._transaction("restore salvaged rows") as conn:
            conn.executemany(
                f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r.seq, r.alert_id, r.topic, r.payload, r.created_wall, r.published_wall, r.acked_wall) for r in rows],
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
            deleted = self._conn.execute(
                f"DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE {self._done_sql()} "
                "ORDER BY seq LIMIT ?)",
                (excess,),
            ).rowcount
            if deleted < excess:
                raise OutboxFullError(self.path, self.max_rows, alert_id)
        cur = self._conn.execute(
            "INSERT INTO outbox (alert_id, topic, payload, created_wall) VALUES (?, ?, ?, ?)",
            (alert_id, topic, bytes(payload), created),
        )
        assert cur.lastrowid is not None  # an INSERT into a rowid table always sets it
        return int(cur.lastrowid)

    def _done_sql(self) -> str:
        """SQL condition of rows the outbox is finished with."""
        return "acked_wall IS NOT NULL" if self.ack_required else "published_wall IS NOT NULL"

    def mark_published(self, seq: int, *, now_wall: float | None = None) -> bool:
        """Record the broker's PUBACK for ``seq`` (call it only after the PUBACK); False if no such row."""
        when = time.time() if now_wall is None else now_wall
        return self._update("UPDATE outbox SET published_wall = ? WHERE seq = ?", (when, seq), f"mark {seq}")

    def mark_published_many(self, seqs: Sequence[int], *, now_wall: float | None = None) -> int:
        """``mark_published`` for several rows in one transaction (one fsync); returns rows updated."""
        when = time.time() if now_wall is None else now_wall
        with self._transaction("mark rows published") as conn:
            return sum(
                conn.execute("UPDATE outbox SET published_wall = ? WHERE seq = ?", (when, s)).rowcount for s in seqs
            )

    def mark_acked(self, alert_id: str, ack_token: str, *, now_wall: float | None = None) -> bool:
        """Record an integrator's acknowledgement; see ``mark_acked_many``."""
        return self.mark_acked_many([(alert_id, ack_token)], now_wall=now_wall) == 1

    def mark_acked_many(self, claims: Sequence[tuple[str, str]], *, now_wall: float | None = None) -> int:
        """Record ``(alert_id, ack_token)`` acknowledgements in one transaction (one fsync); returns how many
        rows it newly acknowledged.

        An ack counts only for an alert that was already published (an ack cannot arrive before the alert
        unless someone predicted its id) and whose stored payload carries the same ``ack_token`` (a secret that
        appears only in that alert's payload). Everything else counts 0: unknown ids (another host's, or
        cleaned up), already acknowledged ones, unpublished ones, wrong tokens.
        """
        when = time.time() if now_wall is None else now_wall
        updated = 0
        with self._transaction("record acknowledgements") as conn:
            for alert_id, token in claims:
                row = conn.execute(
                    "SELECT seq, payload FROM outbox "
                    "WHERE alert_id = ? AND acked_wall IS NULL AND published_wall IS NOT NULL",
                    (alert_id,),
                ).fetchone()
                stored = ack_token_of(bytes(row[1])) if row is not None else None
                if stored is None or not hmac.compare_digest(stored.encode(), token.encode()):
                    continue
                updated += conn.execute("UPDATE outbox SET acked_wall = ? WHERE seq = ?", (when, int(row[0]))).rowcount
        return int(updated)

    def cleanup(self, older_than_s: float, *, now_wall: float | None = None) -> int:
        """Delete delivered rows older than ``older_than_s``; undelivered rows are never deleted. Returns the
        number of rows deleted. ``seq`` keeps growing after a cleanup."""
        now = time.time() if now_wall is None else now_wall
        column = "acked_wall" if self.ack_required else "published_wall"
        with self._lock:
            try:
                cur = self._conn.execute(
                    f"DELETE FROM outbox WHERE {column} IS NOT NULL AND {column} < ?", (now - older_than_s,)
                )
                return int(cur.rowcount)
            except sqlite3.Error as exc:
                raise _storage_error(self.path, "clean up", exc) from exc

    def _update(self, sql: str, params: tuple[object, ...], doing: str) -> bool:
        with self._lock:
            try:
                return int(self._conn.execute(sql, params).rowcount) > 0
            except sqlite3.Error as exc:
                raise _storage_error(self.path, doing, exc) from exc

    # -- reading ---------------------------------------------------------------------------------------------

    def pending(self, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` rows not yet acknowledged by the broker, in ``seq`` order."""
        return self._rows(f"SELECT {_COLUMNS} FROM outbox WHERE published_wall IS NULL ORDER BY seq LIMIT ?", (limit,))

    def unacked(self, published_before_wall: float, limit: int) -> list[OutboxRow]:
        """Ack mode: rows published at or before ``published_before_wall`` but not acknowledged, in ``seq``
        order, to be re-published with the same ``alert_id``."""
        return self._rows(
            f"SELECT {_COLUMNS} FROM outbox WHERE acked_wall IS NULL AND published_wall IS NOT NULL "
            "AND published_wall <= ? ORDER BY seq LIMIT ?",
            (published_before_wall, limit),
        )

    def pending_count(self) -> int:
        """Rows not yet acknowledged by the broker."""
        return int(self._scalar("SELECT COUNT(*) FROM outbox WHERE published_wall IS NULL", ()) or 0)

    def unacked_count(self) -> int:
        """Rows the broker took but no integrator acknowledged yet (meaningful in ack mode only)."""
        return int(
            self._scalar("SELECT COUNT(*) FROM outbox WHERE published_wall IS NOT NULL AND acked_wall IS NULL", ()) or 0
        )

    def oldest_pending_age_s(self, now_wall: float) -> float:
        """Seconds the oldest unpublished row has waited; 0.0 when nothing is pending."""
        created = self._scalar("SELECT created_wall FROM outbox WHERE published_wall IS NULL ORDER BY seq LIMIT 1", ())
        return 0.0 if created is None else max(0.0, now_wall - float(created))

    def stats(self, now_wall: float) -> OutboxStats:
        """Pending, oldest pending age, unacknowledged and total rows, read in one transaction."""
        with self._lock:
            try:
                pending, oldest, unacked, rows = self._conn.execute(
                    "SELECT "
                    "(SELECT COUNT(*) FROM outbox WHERE published_wall IS NULL), "
                    "(SELECT MIN(created_wall) FROM outbox WHERE published_wall IS NULL), "
                    "(SELECT COUNT(*) FROM outbox WHERE published_wall IS NOT NULL AND acked_wall IS NULL), "
                    "(SELECT COUNT(*) FROM outbox)"
                ).fetchone()
            except sqlite3.Error as exc:
                raise _storage_error(self.path, "read", exc) from exc
        age = 0.0 if oldest is None else max(0.0, now_wall - float(oldest))
        # Without ack mode nobody acknowledges, so "unacknowledged" would just count delivered rows.
        return OutboxStats(int(pending), age, int(unacked) if self.ack_required else 0, int(rows))

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
