"""Logging: key=value lines on stderr, journald priority prefixes only when stderr is the journal stream."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from gaitwatch.daemon.logs import configure_logging, journald_priority


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def stream_file(tmp_path: Path) -> Iterator[TextIO]:
    """A real file standing in for stderr (it has a device and inode, like the journal's socket)."""
    with (tmp_path / "stderr.log").open("w+", encoding="utf-8") as f:
        yield f


def journal_env(stream: TextIO) -> dict[str, str]:
    st = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def lines(stream: TextIO) -> list[str]:
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


def test_key_value_lines_with_extras(stream_file: TextIO) -> None:
    configure_logging("info", env={}, stream=stream_file)
    log = logging.getLogger("gaitwatch.test")
    log.info("camera offline", extra={"camera": "bay1", "age_s": 20.5, "note": 'said "hi"'})
    log.debug("not shown at info level")
    (line,) = lines(stream_file)
    assert line.startswith("ts=") and line.split(" ", 1)[0].endswith("Z")
    assert 'level=info logger=gaitwatch.test msg="camera offline" camera=bay1 age_s=20.5' in line
    assert 'note="said \\"hi\\""' in line
    assert not line.startswith("<")


def test_journald_prefixes_when_stderr_is_the_journal(stream_file: TextIO) -> None:
    configure_logging("debug", env=journal_env(stream_file), stream=stream_file)
    log = logging.getLogger("gaitwatch.test")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    got = lines(stream_file)
    assert [line[:3] for line in got] == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    assert all(" ts=" not in line and not line[3:].startswith("ts=") for line in got)  # journald adds time


def test_no_prefix_when_journal_stream_is_someone_elses(stream_file: TextIO) -> None:
    configure_logging("info", env={"JOURNAL_STREAM": "1:2"}, stream=stream_file)
    logging.getLogger("gaitwatch.test").warning("w")
    (line,) = lines(stream_file)
    assert line.startswith("ts=")


def test_traceback_stays_on_one_line(stream_file: TextIO) -> None:
    configure_logging("info", env=journal_env(stream_file), stream=stream_file)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("gaitwatch.test").exception("failed")
    (line,) = lines(stream_file)
    assert line.startswith("<3>") and "exc=" in line and "RuntimeError: boom" in line and "\\n" in line


def test_configuring_twice_does_not_duplicate_lines() -> None:
    stream = io.StringIO()
    configure_logging("info", env={}, stream=stream)
    configure_logging("info", env={}, stream=stream)
    logging.getLogger("gaitwatch.test").info("once")
    assert stream.getvalue().count("msg=once") == 1


def test_priority_mapping_and_bad_level() -> None:
    assert [journald_priority(n) for n in (5, 10, 20, 30, 40, 50)] == [7, 7, 6, 4, 3, 2]
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", env={}, stream=io.StringIO())
