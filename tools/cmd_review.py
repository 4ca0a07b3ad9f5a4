"""``gaitwatch review``: a local web page where a clinician watches recordings and labels episodes.

Usage: ``gaitwatch review RECORDING... --labels LABELS.csv [--rater NAME] [--port P] [--host ADDR]
[--model default|rules|PATH]``. Serves one page on http://127.0.0.1:P/ (P 8765 by default; 0 picks a free port;
the address is printed) that plays each person's skeleton over time (keypoints only; the clinician may open the
matching video file from their own disk, which the browser plays locally: it is never sent anywhere), shows the
gait stage's windows, metrics and alerts on a timeline, and lets the rater mark episodes with the keyboard:
normal / abnormal (with an optional pattern), fall, sit_to_stand, bed_exit or unusable, from a start mark to the
cursor. Every change is written to LABELS.csv atomically before the page says "saved" (one row per episode:
``recording,subject,t_start,t_end,rater,label,pattern,note``; ``subject`` is the person's track id). Several
raters can label one file, even at once (each server rewrites only its ``--rater``'s rows and keeps the
others' as the file has them). Stop with Ctrl-C.

Exit codes: 0 stopped; 2 usage; 65 LABELS.csv exists but is not an episode file; 66 a recording is missing or
unreadable; 73 LABELS.csv's folder cannot be written, or the port cannot be bound (in use, or not allowed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from gaitwatch.gait.offline.episodes import is_episode_file, read_episodes

if TYPE_CHECKING:
    from gaitwatch.tools.review_app import ReviewState

EX_DATAERR, EX_NOINPUT, EX_CANTCREAT = 65, 66, 73
DEFAULT_PORT = 8765


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``review`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "review",
        help="a local web page to watch recordings and label gait episodes (saved to a CSV)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recordings", type=Path, nargs="+", metavar="RECORDING", help="keypoint recordings (.npz)")
    p.add_argument("--labels", type=Path, required=True, help="episode labels CSV (created if absent)")
    p.add_argument("--rater", default=None, help="who is labelling (default: the login name)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any free)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: only this PC; the page shows patients' movements)",
    )
    p.add_argument("--model", default="default", help="gait model for the system's windows (as replay --model)")
    p.set_defaults(func=run)


def check_labels_path(labels: Path) -> str | None:
    """Why ``labels`` cannot be used (None when it can): its folder must take a new file (the atomic rewrite
    creates one beside it), and an existing file must be an episode file."""
    folder = labels.parent if str(labels.parent) else Path()
    if not folder.is_dir():
        return f"{folder}: no such folder for {labels.name}"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{labels.name}.", suffix=".check"):
            pass
    except OSError as exc:
        return f"cannot write labels into {folder}: {exc.strerror or exc}"
    if labels.exists() and labels.stat().st_size > 0:
        try:
            ok = is_episode_file(labels)
        except (OSError, UnicodeDecodeError) as exc:
            return f"{labels}: cannot read: {exc}"
        if not ok:
            return f"{labels}: not an episode labels file (needs columns t_start, t_end, rater)"
    return None


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or the password database
        return "rater"


def run(args: argparse.Namespace) -> int:
    rater = (args.rater or _login_name()).strip()
    if not rater or "," in rater or "\n" in rater:
        sys.stderr.write("gaitwatch review: --rater must be a non-empty name without commas\n")
        return 2
    problem = check_labels_path(args.labels)
    if problem is not None:
        sys.stderr.write(f"gaitwatch review: {problem}\n")
        return EX_DATAERR if "not an episode" in problem or "cannot read" in problem else EX_CANTCREAT
    from gaitwatch.tools.review_app import ReviewState, load_recordings

    try:
        recordings = load_recordings(list(args.recordings), args.labels)
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"gaitwatch review: {exc}\n")
        return EX_NOINPUT
    try:
        episodes = read_episodes(args.labels)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"gaitwatch review: {exc}\n")
        return EX_DATAERR
    state = ReviewState(args.labels, rater, recordings, args.model, episodes)
    try:
        return asyncio.run(serve(state, args.host, args.port))
    except KeyboardInterrupt:
        return 0


async def serve(state: ReviewState, host: str, port: int) -> int:
    """Serve until SIGINT / SIGTERM; 73 when the address cannot be bound."""
    from aiohttp import web

    from gaitwatch.tools.review_app import build_app

    allowed = frozenset(
        {host, "localhost", "127.0.0.1", "::1"} if host in ("127.0.0.1", "::1", "localhost") else {host}
    )
    runner = web.AppRunner(build_app(state, allowed), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=False)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        sys.stderr.write(
            f"gaitwatch review: cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another port with --port (0 picks a free one)\n"
        )
        return EX_CANTCREAT
    bound = port
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    if sockets:
        bound = int(sockets[0].getsockname()[1])
    url_host = f"[{host}]" if ":" in host else host
    sys.stdout.write(
        f"gaitwatch review: http://{url_host}:{bound}/ rater={state.rater} recordings={len(state.recordings)} "
        f"labels={state.labels} (Ctrl-C to stop)\n"
    )
    sys.stdout.flush()
    prefetch = asyncio.create_task(state.prefetch())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        prefetch.cancel()
        await runner.cleanup()
    return 0
