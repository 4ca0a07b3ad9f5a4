"""Which signals the daemon answers, and that every other signal whose default would kill it is ignored.

A signal's default action would end the daemon mid-frame (outbox, open incidents and all), and systemd counts
some of those deaths as clean exits. So: SIGTERM/SIGINT stop gracefully, SIGHUP reloads, SIGUSR1 logs the
state (the service's handlers), and the rest below are ignored with a (throttled) line in the log. SIGQUIT
keeps its core dump (debugging); SIGKILL and SIGSTOP cannot be caught; SIGPIPE and SIGXFSZ Python already
ignores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping

from gaitwatch.daemon.logs import LogThrottle

# The service's parts log under the service's name (see camera_runner).
log = logging.getLogger("gaitwatch.daemon.service")

# Signals that would terminate the process by default and have no meaning for the daemon.
IGNORED_SIGNALS: tuple[int, ...] = (
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGVTALRM,
    signal.SIGPROF,
    signal.SIGIO,
    signal.SIGPWR,
    signal.SIGSTKFLT,
    *range(signal.SIGRTMIN, signal.SIGRTMAX + 1),
)
# An ignored signal is logged at most once per this many seconds (a script sending it in a loop is one line).
IGNORED_LOG_INTERVAL_S = 60.0


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop, handlers: Mapping[int, Callable[[], None]]
) -> Callable[[], None]:
    """Install ``handlers`` and ignore every ``IGNORED_SIGNALS`` one not among them; returns the function
    that removes them all again (where signals cannot be handled, e.g. off the main thread, nothing is)."""
    throttle = LogThrottle(IGNORED_LOG_INTERVAL_S)
    every = dict(handlers)
    for sig in IGNORED_SIGNALS:
        every.setdefault(sig, lambda sig=sig: _ignore(throttle, sig))  # type: ignore[misc]
    for sig, handler in every.items():
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handler)

    def remove() -> None:
        for sig in every:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    return remove


def _ignore(throttle: LogThrottle, sig: int) -> None:
    try:
        name = signal.Signals(sig).name
    except ValueError:  # a real-time signal between SIGRTMIN and SIGRTMAX has no name of its own
        name = f"signal {sig}"
    throttle.log(
        log,
        logging.WARNING,
        f"signal-{sig}",
        "ignoring %s (SIGHUP reloads the config, SIGUSR1 logs the state)",
        name,
    )
