"""``gaitwatch outbox salvage``: recover the alerts of a corrupt outbox into a fresh one.

Usage: ``gaitwatch outbox salvage --state-dir DIR [--max-rows N]`` (or ``--config FILE`` to take
``service.state_dir`` and ``outbox.max_rows`` from the daemon's config). Stop the daemon first (the command takes
the state directory's lock, like the daemon). The damaged files are moved aside as
``outbox.sqlite3.corrupt-<UTC time>`` (kept as evidence), every readable row is copied into a fresh outbox with
its original ``seq``, id, payload and each sink's delivery state (schema 1-3 files alike), and the daemon then
delivers what was pending at its next start. Prints ``salvaged=N pending=P unreadable=U moved_to=PATH``.

Exit codes: 0 salvaged (or the outbox was healthy: nothing done); 73 the state directory is in use or cannot be
written; 65 nothing could be read; 78 an invalid config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gaitwatch.daemon.outbox import OutboxError
from gaitwatch.daemon.outbox_salvage import SalvageError, salvage
from gaitwatch.daemon.settings import EX_CONFIG, ConfigError, OutboxSettings, load_settings
from gaitwatch.daemon.state_lock import StateDirLock, StateDirLockedError

EX_DATAERR = 65
EX_CANTCREAT = 73
OUTBOX_FILE = "outbox.sqlite3"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``outbox`` subcommand (``outbox salvage``) to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "outbox",
        help="maintenance of the alert outbox: salvage a corrupt one",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = actions.add_parser("salvage", help="copy every readable alert of a corrupt outbox into a fresh one")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--state-dir", type=Path, help="the daemon's service.state_dir")
    where.add_argument("--config", type=Path, help="the daemon's config file (its state_dir and max_rows)")
    s.add_argument("--max-rows", type=int, default=None, help="outbox.max_rows of the fresh outbox")
    s.set_defaults(func=run_salvage)


def run_salvage(args: argparse.Namespace) -> int:
    max_rows = OutboxSettings().max_rows
    if args.config is not None:
        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            sys.stderr.write(f"gaitwatch: {exc}\n")
            return EX_CONFIG
        state_dir, max_rows = settings.service.state_dir, settings.outbox.max_rows
    else:
        state_dir = args.state_dir
    if args.max_rows is not None:
        max_rows = args.max_rows
    path = state_dir / OUTBOX_FILE
    if not path.is_file():
        sys.stderr.write(f"gaitwatch: no outbox at {path}; check --state-dir (service.state_dir)\n")
        return EX_DATAERR
    lock = StateDirLock(state_dir)
    try:
        lock.acquire()
    except StateDirLockedError as exc:
        sys.stderr.write(f"gaitwatch: {exc} (stop the daemon before salvaging its outbox)\n")
        return EX_CANTCREAT
    except OSError as exc:
        sys.stderr.write(f"gaitwatch: cannot lock {state_dir}: {exc.strerror}\n")
        return EX_CANTCREAT
    try:
        report = salvage(path, max_rows)
    except SalvageError as exc:
        sys.stderr.write(f"gaitwatch: {exc}; nothing was changed\n")
        return EX_DATAERR
    except (OutboxError, OSError) as exc:
        sys.stderr.write(f"gaitwatch: cannot write the fresh outbox: {exc}\n")
        return EX_CANTCREAT
    finally:
        lock.release()
    if report.moved_to is None:
        sys.stdout.write(f"outbox {path} is healthy; nothing to salvage\n")
        return 0
    sys.stdout.write(
        f"salvaged={report.salvaged} pending={report.pending} unreadable={report.unreadable} "
        f"moved_to={report.moved_to}\n"
    )
    return 0
