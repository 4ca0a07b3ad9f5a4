"""Recover what can be read from a corrupt outbox, so that its undelivered alerts are not stranded.

A corrupt outbox stops the daemon at start-up (exit 73): it must not run on a database that may lose what it
stores. Its pending alerts are still on disk, mostly readable: ``salvage`` reads every row it can, in ranges of
``seq`` that it halves around unreadable pages (one bad page costs the few rows on it, not the table), moves
the damaged files aside (kept, never deleted: they are evidence), and writes the rows into a fresh outbox with
their original ``seq``, ids, payloads and delivery state, so integrators see the same alerts, and new ones
continue the sequence.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from gaitwatch.daemon.outbox import Outbox, OutboxRow

# Rows read per query; halved around unreadable pages down to single rows.
_CHUNK = 512
_COLUMNS = "seq, alert_id, topic, payload, created_wall, published_wall, acked_wall"


@dataclass(frozen=True, slots=True)
class SalvageReport:
    salvaged: int  # rows copied into the fresh outbox
    pending: int  # of those, not yet published
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
    rows, last_seq, unreadable = _read_rows(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_wall))
    moved = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{moved}{suffix}"))
    with Outbox(path, max(max_rows, len(rows))) as fresh:
        fresh.restore(rows, last_seq=last_seq)
    pending = sum(1 for r in rows if r.published_wall is None)
    return SalvageReport(len(rows), pending, unreadable, moved)


def _read_rows(path: Path) -> tuple[list[OutboxRow], int, int]:
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
        unreadable = _read_range(conn, 1, top, rows)
        rows.sort(key=lambda r: r.seq)
        return rows, top, unreadable
    finally:
        conn.close()


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


def _read_range(conn: sqlite3.Connection, low: int, high: int, out: list[OutboxRow]) -> int:
    """Read rows with ``low <= seq <= high`` into ``out``; returns how many seq values could not be read."""
    unreadable = 0
    start = low
    while start <= high:
        end = min(high, start + _CHUNK - 1)
        unreadable += _read_chunk(conn, start, end, out)
        start = end + 1
    return unreadable


def _read_chunk(conn: sqlite3.Connection, low: int, high: int, out: list[OutboxRow]) -> int:
    try:
        fetched = conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE seq BETWEEN ? AND ? ORDER BY seq", (low, high)
        ).fetchall()
        rows = [_row(r) for r in fetched]
    except (sqlite3.Error, TypeError, ValueError):
        if low == high:
            return 1
        middle = (low + high) // 2
        return _read_chunk(conn, low, middle, out) + _read_chunk(conn, middle + 1, high, out)
    out.extend(rows)
    return 0


def _row(r: tuple[object, ...]) -> OutboxRow:
    seq, alert_id, topic, payload, created, published, acked = r
    if not isinstance(alert_id, str) or not isinstance(topic, str) or not isinstance(payload, bytes):
        raise ValueError("damaged row")
    return OutboxRow(
        int(_number(seq)),
        alert_id,
        topic,
        payload,
        _number(created),
        None if published is None else _number(published),
        None if acked is None else _number(acked),
    )


def _number(value: object) -> float:
    if not isinstance(value, int | float):
        raise ValueError("damaged row")
    return float(value)
