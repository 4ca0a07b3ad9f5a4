"""The one mosquitto helper of the demo, the benchmark, the soak test and the tests' fixtures
(``gaitwatch.tools.local_broker``): a real broker on 127.0.0.1, MQTT 5 by default, no home-made fallback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from gaitwatch.tools.local_broker import LOOPBACK, BrokerStartError, Mosquitto, local_broker

GUARD_S = 10.0


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


async def test_local_broker_runs_mosquitto_on_loopback_and_stops_it() -> None:
    async with local_broker() as broker:
        assert broker.running and broker.host == LOOPBACK
        assert f"listener {broker.port} 127.0.0.1\n" in broker.config_path.read_text()
        process = broker.proc
        assert process is not None
        workdir = broker.workdir
        # What each client actually spoke, as the broker logged it (the demo prints this).
        v5 = aiomqtt.ProtocolVersion.V5
        async with aiomqtt.Client(LOOPBACK, broker.port, identifier="daemon", protocol=v5, timeout=GUARD_S) as c:
            await c.publish("gw/h1/status", b"online", qos=1)
        async with aiomqtt.Client(LOOPBACK, broker.port, identifier="integrator", timeout=GUARD_S):
            pass
        assert broker.connections() == [("daemon", "5"), ("integrator", "3.1.1")]
    assert process.returncode is not None, "the broker must be stopped when the block ends"
    assert not _accepts(broker.port)
    assert not workdir.exists(), "its config and log live in a temporary directory"


def test_a_broker_that_cannot_listen_fails_with_its_log(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        broker = Mosquitto(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(BrokerStartError, match="mosquitto exited with") as failure:
            broker.start()
    assert "Address already in use" in str(failure.value)
    assert not broker.running


def test_the_demo_without_mosquitto_fails_naming_the_binary_and_the_install_command() -> None:
    # As on a machine where only the Python package was installed: no mosquitto anywhere.
    script = (
        "import sys\n"
        "import gaitwatch.tools.local_broker as lb\n"
        "lb.find_mosquitto = lambda: None\n"
        "from gaitwatch.tools.cli import main\n"
        "sys.exit(main(['demo', '--quiet']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 69, proc.stderr
    assert proc.stdout == ""
    assert "`mosquitto`" in proc.stderr and "not installed" in proc.stderr
    assert "bash scripts/install.sh" in proc.stderr and "apt-get install mosquitto" in proc.stderr
    assert "Traceback" not in proc.stderr
