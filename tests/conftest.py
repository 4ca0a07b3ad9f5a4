"""Shared fixtures: a real mosquitto broker on a free loopback port.

Tests of the daemon's MQTT side run against the real broker integrators use, never a mock. ``mosquitto`` is a
fresh broker per test (anonymous, no persistence); ``mosquitto_factory`` makes brokers with persistence or
extra configuration (password file, ACL, TLS listener) and returns a handle that can stop, kill -9 and restart
the broker on the same port, as the fault-injection tests need. Both use ``gaitwatch.tools.local_broker``, the
one helper that also starts the broker of the demo, the benchmark and the soak test. A missing binary FAILS the
test: CI must install mosquitto (see the README's test install command), a skipped broker test proves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gaitwatch.tools.local_broker import Mosquitto, MosquittoNotInstalledError, require_mosquitto


def find_mosquitto() -> Path:
    """The mosquitto binary (``local_broker.require_mosquitto``); FAILS the test when it is absent."""
    try:
        return require_mosquitto()
    except MosquittoNotInstalledError as exc:
        pytest.fail(f"the MQTT tests need a real broker: {exc}", pytrace=False)


MosquittoFactory = Callable[..., Mosquitto]


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """``make(persistence=False, extra_config="", start=True) -> Mosquitto``; every broker made is killed at
    the end of the test. ``extra_config`` lines go after the listener line, so they configure it."""
    binary = find_mosquitto()
    made: list[Mosquitto] = []

    def make(*, persistence: bool = False, extra_config: str = "", start: bool = True) -> Mosquitto:
        workdir = tmp_path / f"mosquitto-{len(made)}"
        workdir.mkdir()
        broker = Mosquitto(workdir, binary, persistence=persistence, extra_config=extra_config)
        made.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in made:
        broker.kill()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> Mosquitto:
    """A running anonymous mosquitto without persistence, on a free 127.0.0.1 port."""
    return mosquitto_factory()
