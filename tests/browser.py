"""Helpers for tests that drive a real headless Chromium with Playwright, and start ``gaitwatch review``.

The browser: ``$GAITWATCH_CHROMIUM`` if set, else Playwright's own download (``python -m playwright install
chromium``) when present, else the system's ``chromium`` (Debian's package, which ``scripts/install.sh --dev``
installs where Playwright's download is not reachable)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

SYSTEM_CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_executable() -> str | None:
    """The browser to launch: a path, or None for Playwright's own build."""
    env = os.environ.get("GAITWATCH_CHROMIUM")
    if env:
        return env
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache" / "ms-playwright"))
    if any(cache.glob("chromium*/chrome-linux*/chrome")) or any(cache.glob("chromium_headless_shell*/*/*shell")):
        return None
    for name in SYSTEM_CHROMIUMS:
        found = shutil.which(name)
        if found:
            return found
    return ""  # nothing found


class ReviewServer:
    """A running ``gaitwatch review`` subprocess and the address it printed."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.stderr: list[str] = []


def _read_url(stream: IO[str], found: list[str], done: threading.Event) -> None:
    for line in stream:
        m = re.search(r"http://\S+/", line)
        if m:
            found.append(m.group(0))
            break
    done.set()


@contextmanager
def review_server(args: list[str], startup_limit_s: float = 120.0) -> Iterator[ReviewServer]:
    """Start ``gaitwatch review ARGS --port 0`` and yield once it printed its address; stop it afterwards.
    ``startup_limit_s`` only guards against a server that never comes up (it is not a timing assertion)."""
    cmd = [sys.executable, "-m", "gaitwatch.tools.cli", "review", *args, "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    found: list[str] = []
    done = threading.Event()
    threading.Thread(target=_read_url, args=(proc.stdout, found, done), daemon=True).start()
    done.wait(startup_limit_s)
    try:
        if not found:
            proc.kill()
            raise RuntimeError(f"gaitwatch review did not start: {proc.stderr.read()}")
        yield ReviewServer(proc, found[0])
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
