"""Recover what can be read from a corrupt outbox, so that its undelivered alerts are not stranded.

A corrupt outbox stops the daemon at start-up (exit 73): it must not run on a database that may lose what it
stores. Its pending alerts are still on disk, mostly readable: ``salvage`` reads every row it can, in ranges of
``seq`` that it halves around unreadable pages (one bad page costs the few rows on it, not the table), moves
the damaged files aside (kept, never deleted: they are evidence), and writes the rows into a fresh outbox with
their original ``seq``, ids, payloads and per-sink delivery state, so integrators see the same alerts, and new
ones continue the sequence.

Both layouts are read: schema 3 (``deliveries`` rows per sink, read in ranges like the alerts) and schema 1-2
(``published_wall``/``acked_wall`` columns: the ``mqtt`` sink's state). A row whose delivery state cannot be
read is owed again to every sink seen in the file (``mqtt`` at least): re-sent, a duplicate at worst, never a
loss (the FHIR sink's conditional create turns its duplicate into a no-op).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from gaitwatch.daemon.outbox import MQTT_SINK, DeliveryState, Outbox, OutboxRow, SinkPolicy, delivery_state

# Rows read per query; halved around unreadable pages down to single rows.
_CHUNK = 512
_ROW_COLUMNS = "seq, alert_id, topic, payload, created_wall"
_LEGACY_COLUMNS = "seq, published_wall, acked_wall"
_DELIVERY_COLUMNS = "seq, sink, delivered_at, acked_at, attempts, next_attempt_at, rejected_at, last_error"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SalvageReport:
    salvaged: int  # rows copied into the fresh outbox
    pending: int  # of those, not yet delivered to every sink they are owed to
    unreadable: int  # seq values in the readable range whose rows could not be read (some may never have existed)
    moved_to: Path | None  # where the damaged files went (None: the outbox was healthy, nothing was done)


class SalvageError(Exception):
    """Nothing could be salvaged (the file is not an outbox, or not even its size could be read)."""


def is_healthy(path: Path) -> bool:
    try:
        with Outbox(path, 10**7):
            return True
    except Exception:  # any failure to open is what salvage is for
        return False


def salvage(path: Path, max_rows: int, *, now_wall: float | None = None) -> SalvageReport:
    """Salvage the outbox at ``path`` (see the module docstring). The caller must hold the state directory's
    lock (no daemon running on it)."""
    if is_healthy(path):
        return SalvageReport(0, 0, 0, None)
    rows, states, last_seq, unreadable = _read_outbox(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_wall))
    moved = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{moved}{suffix}"))
    sinks = sorted({MQTT_SINK, *(d.sink for d in states)})
    with Outbox(path, max(max_rows, len(rows)), sinks=[SinkPolicy(s) for s in sinks]) as fresh:
        fresh.restore(rows, states, last_seq=last_seq)
        pending = fresh.pending_count()
    return SalvageReport(len(rows), pending, unreadable, moved)


def _read_outbox(path: Path) -> tuple[list[OutboxRow], list[DeliveryState], int, int]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise SalvageError(f"cannot open {path} at all: {exc}") from exc
    try:
        top = _highest_seq(conn)
        if top is None:
            raise SalvageError(
                f"{path}: no outbox table could be read (not a gaitwatch outbox, or its first pages are lost)"
            )
        rows: list[OutboxRow] = []
        unreadable = _read_range(conn, f"SELECT {_ROW_COLUMNS} FROM outbox", _row, 1, top, rows)
        rows.sort(key=lambda r: r.seq)
        states: list[DeliveryState] = []
        if _readable(conn, f"SELECT {_LEGACY_COLUMNS} FROM outbox WHERE 0"):
            _read_range(conn, f"SELECT {_LEGACY_COLUMNS} FROM outbox", _legacy_state, 1, top, states)
        elif _readable(conn, f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE 0"):
            _read_range(conn, f"SELECT {_DELIVERY_COLUMNS} FROM deliveries", delivery_state, 1, top, states)
        salvaged = {r.seq for r in rows}
        return rows, [d for d in states if d.seq in salvaged], top, unreadable
    finally:
        conn.close()


def _readable(conn: sqlite3.Connection, sql: str) -> bool:
    try:
        conn.execute(sql).fetchall()
    except sqlite3.Error:
        return False
    return True


def _highest_seq(conn: sqlite3.Connection) -> int | None:
    found: list[int] = []
    for sql in ("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'", "SELECT MAX(seq) FROM outbox"):
        try:
            row = conn.execute(sql).fetchone()
        except sqlite3.Error:
            continue
        if row is not None and row[0] is not None:
            found.append(int(row[0]))
    return max(found) if found else None


def _read_range(
    conn: sqlite3.Connection,
    select: str,
    parse: Callable[[tuple[object, ...]], T],
    low: int,
    high: int,
    out: list[T],
) -> int:
    """Read what ``select`` finds with ``low <= seq <= high`` into ``out``; returns how many seq values could
    not be read."""
    unreadable = 0
    start = low
    while start <= high:
        end = min(high, start + _CHUNK - 1)
        unreadable += _read_chunk(conn, select, parse, start, end, out)
        start = end + 1
    return unreadable


def _read_chunk(
    conn: sqlite3.Connection,
    select: str,
    parse: Callable[[tuple[object, ...]], T],
    low: int,
    high: int,
    out: list[T],
) -> int:
    try:
        fetched = conn.execute(f"{select} WHERE seq BETWEEN ? AND ? ORDER BY seq", (low, high)).fetchall()
        parsed = [parse(r) for r in fetched]
    except (sqlite3.Error, TypeError, ValueError):
        if low == high:
            return 1
        middle = (low + high) // 2
        return _read_chunk(conn, select, parse, low, middle, out) + _read_chunk(
            conn, select, parse, middle + 1, high, out
        )
    out.extend(parsed)
    return 0


def _row(r: tuple[object, ...]) -> OutboxRow:
    seq, alert_id, topic, payload, created = r
    if not isinstance(alert_id, str) or not isinstance(topic, str) or not isinstance(payload, bytes):
        raise ValueError("damaged row")
    return OutboxRow(int(_number(seq)), alert_id, topic, payload, _number(created))


def _legacy_state(r: tuple[object, ...]) -> DeliveryState:
    """Schema 1-2: the row's own published/acked times are its ``mqtt`` delivery."""
    seq, published, acked = r
    return DeliveryState(
        int(_number(seq)),
        MQTT_SINK,
        None if published is None else _number(published),
        None if acked is None else _number(acked),
        attempts=0 if published is None else 1,
    )


def _number(value: object) -> float:
    if not isinstance(value, int | float):
        raise ValueError("damaged row")
    return float(value)
