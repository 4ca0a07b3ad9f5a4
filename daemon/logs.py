"""Logging set-up: stdlib logging to stderr, one ``key=value`` line per record.

Under systemd (``$JOURNAL_STREAM`` names the stderr we write to) each line starts with a syslog priority
prefix (``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug; ``<2>`` critical), which journald turns
into the entry's priority so ``journalctl -p warning`` works; the timestamp is then left to journald.
Elsewhere a ``ts=`` field comes first. A traceback is folded into one quoted ``exc=`` field, so a record is
always one journal entry.

Context goes in ``extra``: ``log.warning("camera offline", extra={"camera": "bay1", "age_s": 20.4})`` gives
``... msg="camera offline" camera=bay1 age_s=20.4``. Log track ids, never names, images or secrets.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TextIO

_PRIORITIES: Final = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
    (logging.DEBUG, 7),
)
# Values made only of these characters are written bare; anything else is JSON-quoted (spaces, quotes, '=').
_BARE: Final = re.compile(r"^[A-Za-z0-9_.:/@+,-]+$")
# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRS: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Third-party loggers that narrate every packet at DEBUG (paho via aiomqtt): kept at INFO or above.
_CHATTY: Final = ("mqtt",)


def journald_priority(levelno: int) -> int:
    """Syslog priority of a logging level (levels between the standard ones round down in severity)."""
    for threshold, priority in _PRIORITIES:
        if levelno >= threshold:
            return priority
    return 7


def _value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """``[<prio>]`` or ``ts=...``, then ``level= logger= msg=``, the record's extras, and ``exc=``."""

    def __init__(self, *, journald: bool) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        parts: list[str] = []
        if not self.journald:
            ts = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
            parts.append("ts=" + ts.removesuffix("+00:00") + "Z")
        parts.append(f"level={record.levelname.lower()}")
        parts.append(f"logger={record.name}")
        parts.append(f"msg={_value(record.getMessage())}")
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                parts.append(f"{key}={_value(value)}")
        if record.exc_info:
            parts.append(f"exc={_value(self.formatException(record.exc_info))}")
        elif record.exc_text:
            parts.append(f"exc={_value(record.exc_text)}")
        line = " ".join(parts)
        return f"<{journald_priority(record.levelno)}>{line}" if self.journald else line


def journal_stream_matches(env: Mapping[str, str], stream: TextIO) -> bool:
    """True when ``$JOURNAL_STREAM`` (``<device>:<inode>``) is the file behind ``stream``. systemd sets it
    for the service's own stderr; comparing guards against a child whose stderr was redirected elsewhere."""
    raw = env.get("JOURNAL_STREAM", "")
    dev, sep, ino = raw.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return st.st_dev == int(dev) and st.st_ino == int(ino)
    except (OSError, ValueError, AttributeError):
        return False


def configure_logging(
    level: str | int = "info", *, env: Mapping[str, str] | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Send all logging to ``stream`` (stderr) in key=value form; replaces a handler installed by an earlier
    call, so calling it twice never duplicates lines. Returns the installed handler."""
    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    levelno = logging.getLevelName(level.upper()) if isinstance(level, str) else int(level)
    if not isinstance(levelno, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter(journald=journal_stream_matches(env, stream)))
    handler.set_name("gaitwatch")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "gaitwatch"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(levelno, logging.INFO))
    return handler


class LogThrottle:
    """At most one line per ``key`` every ``interval_s``; the next line that gets through says how many
    were suppressed. For messages a hostile or broken peer can trigger at will (malformed acks, a storage
    error on every alert): 1,000 bad messages must not become 1,000 journal lines, yet the first one and a
    steady reminder must show. ``clock`` is injectable for tests; not thread-safe (use it from one thread)."""

    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None: suppress this line. Otherwise log it, with the returned count of lines suppressed since the
        previous one (0 for the first)."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)

    def log(self, logger: logging.Logger, level: int, key: str, msg: str, *args: object, **kwargs: Any) -> bool:
        """``logger.log`` through the throttle; returns whether the line was written."""
        suppressed = self.allow(key)
        if suppressed is None:
            return False
        if suppressed:
            extra = dict(kwargs.pop("extra", None) or {})
            extra["suppressed"] = suppressed
            kwargs["extra"] = extra
        logger.log(level, msg, *args, **kwargs)
        return True
