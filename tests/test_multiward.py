"""Several wards, one hospital: the multi-ward deployment of the README ("Several wards"), on loopback.

Two wards, each with its own daemon (its own site and host id) and its own mosquitto, bridged to a central mosquitto
with the shipped config/mosquitto-bridge.conf (only the address and the ward's name changed, as the file says); a
nurse-call integrator on the central broker that receives both wards' alerts and acknowledges each on its host's
ack topic, so the acks travel back through the right bridge to the right daemon; and one central Prometheus (the
Debian binary) started with the shipped config/prometheus/prometheus.central.yml and gaitwatch.rules.yml, scraping
both daemons. A second test stops the central broker while alerts keep coming: the ward's own display still gets
them, the ward broker queues them for the bridge, and nothing is lost once the centre is back.

As in the fault tests, nothing here is about time: every wait is for an event, bounded only so that a failure
fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_faults_harness import (
    ALERT_FILTER,
    DaemonProcess,
    Integrator,
    base_config,
    check_alerts,
    daemon,
    scrape,
    until_metric,
    write_config,
)

from gaitwatch.tools.local_broker import Mosquitto, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BRIDGE = REPO / "config" / "mosquitto-bridge.conf"
PROMETHEUS_DIR = REPO / "config" / "prometheus"
CENTRAL_PROMETHEUS = PROMETHEUS_DIR / "prometheus.central.yml"
RULES = PROMETHEUS_DIR / "gaitwatch.rules.yml"
# ward (= site id in the topics) -> the host id of its one PC.
WARDS = {"ward3": "ward3-pc1", "ward4": "ward4-pc1"}
# The bridge reconnects with mosquitto's backoff (restart_timeout 2 60: 2 s doubling to 60 s, with jitter), so
# after an outage the centre may wait for the ward's next attempt: give the recovery more room than GUARD_S.
RECOVERY_S = 150.0


# -- the shipped configs, rendered for loopback ------------------------------------------------------------------


def ward_bridge_config(ward: str, central_port: int) -> str:
    """config/mosquitto-bridge.conf for ``ward``: what its header says to change (address, connection name,
    clientid; here also the notification topic), nothing else. The example is written for ward3."""
    text = BRIDGE.read_text()
    assert re.search(r"^address \S+$", text, flags=re.MULTILINE), "the example must name the central broker"
    text = re.sub(r"^address \S+$", f"address 127.0.0.1:{central_port}", text, flags=re.MULTILINE)
    lines = [line if line.startswith("#") else line.replace("ward3", ward) for line in text.splitlines()]
    rendered = "\n".join(lines) + "\n"
    for key in ("connection", "clientid", "notification_topic"):
        assert re.search(rf"^{key} \S*{ward}\S*$", rendered, flags=re.MULTILINE), f"{key} names {ward}"
    return rendered


def central_prometheus_config(metrics_ports: dict[str, int]) -> str:
    """config/prometheus/prometheus.central.yml with each ward's targets pointed at its daemon on 127.0.0.1 and
    the intervals shortened to 1 s; the rule file is loaded by the shipped relative name."""
    text = CENTRAL_PROMETHEUS.read_text()
    groups = re.compile(r"- targets: \[[^\]]*\]\n(\s+labels: \{ward: ([\w-]+)\})")
    wards = [m.group(2) for m in groups.finditer(text)]
    assert set(metrics_ports) <= set(wards), f"the example has a target group per ward: {wards}"
    text = groups.sub(
        lambda m: (
            f'- targets: ["127.0.0.1:{metrics_ports[m.group(2)]}"]\n{m.group(1)}'
            if m.group(2) in metrics_ports
            else f"- targets: []\n{m.group(1)}"
        ),
        text,
    )
    for key in ("scrape_interval", "evaluation_interval"):
        text, n = re.subn(rf"^(\s*{key}): \S+$", r"\1: 1s", text, flags=re.MULTILINE)
        assert n == 1, key
    text, n = re.subn(r"^(\s*scrape_timeout): \S+$", r"\1: 1s", text, flags=re.MULTILINE)
    assert n <= 1
    assert "- gaitwatch.rules.yml" in text and "job_name: gaitwatch" in text
    return text


# -- a real Prometheus ----------------------------------------------------------------------------------------------


@dataclass
class Prometheus:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body.get("status") == "success", body
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query through the HTTP API: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        result: list[dict[str, Any]] = (await asyncio.to_thread(self.get, "/api/v1/query", query=expr))["result"]
        return result

    async def until(self, predicate: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
        """Poll ``predicate`` (sync, may call the API) until it returns something truthy; fail with the log."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    if self.proc.poll() is not None:
                        pytest.fail(f"prometheus exited ({self.proc.returncode}):\n{self.log_path.read_text()[-3000:]}")
                    with contextlib.suppress(OSError):
                        found = await asyncio.to_thread(predicate)
                        if found:
                            return found
                    await asyncio.sleep(0.25)
        except TimeoutError:
            pytest.fail(f"timed out waiting for {what}; prometheus log:\n{self.log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def prometheus(workdir: Path, config_text: str) -> Iterator[Prometheus]:
    """Debian's prometheus on a free loopback port with ``config_text`` and a copy of the shipped rules beside it,
    stopped at the end. A rule file that does not load makes Prometheus exit at start-up."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: `bash scripts/install.sh --dev` installs Debian's prometheus package")
    workdir.mkdir()
    shutil.copy(RULES, workdir / RULES.name)
    config = workdir / "prometheus.yml"
    config.write_text(config_text, encoding="utf-8")
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Prometheus(port, proc, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the central integrator ---------------------------------------------------------------------------------------


def ack_topic_of(alert_topic: str) -> str:
    """``gaitwatch/v1/<site>/<host>/alert[/<camera>]`` -> ``gaitwatch/v1/<site>/<host>/ack``."""
    return alert_topic.split("/alert")[0] + "/ack"


class CentralIntegrator(Integrator):
    """The harness's integrator (persistent QoS 1 session, reconnects), but at the centre: it serves every ward
    and acknowledges each alert on the ack topic of the host that sent it (ack contract v2: id + token)."""

    def ack_topic_for(self, topic: str) -> str | None:
        return ack_topic_of(topic) if "/alert" in topic else None

    async def __aenter__(self) -> CentralIntegrator:
        await super().__aenter__()
        return self

    async def until_recovered(self, predicate: Callable[[], bool], what: str) -> None:
        """``until`` with ``RECOVERY_S`` instead of ``GUARD_S`` (waiting for a bridge's next reconnect attempt)."""
        await self.until(predicate, what, timeout_s=RECOVERY_S)

    def ids_from(self, host: str) -> set[str]:
        return {a["alert_id"] for a in self.alerts() if a["host"] == host}

    def bridge_state(self, ward: str) -> bytes | None:
        states = [r.payload for r in self.received if r.topic == f"gaitwatch-bridge/{ward}/state"]
        return states[-1] if states else None


CENTRAL_FILTERS = [ALERT_FILTER, "gaitwatch/v1/+/+/status", "gaitwatch-bridge/+/state"]


# -- two wards ----------------------------------------------------------------------------------------------------


@dataclass
class Ward:
    name: str
    host: str
    broker: Mosquitto
    config: Path
    metrics_port: int
    process: DaemonProcess | None = None

    @property
    def daemon(self) -> DaemonProcess:
        assert self.process is not None
        return self.process


def make_wards(mosquitto_factory: Any, central: Mosquitto, tmp_path: Path) -> list[Ward]:
    """Per ward: its broker bridged to ``central``, and its daemon's config in ack mode on its own ack topic."""
    wards = []
    for name, host in WARDS.items():
        broker = mosquitto_factory(extra_config=ward_bridge_config(name, central.port))
        mqtt = {"ack_topic": f"gaitwatch/v1/{name}/{host}/ack", "ack_timeout_s": 10.0}
        config = base_config(tmp_path, broker.port, host=host, service={"site": name, "ward": name}, mqtt=mqtt)
        path = write_config(tmp_path / f"{host}.toml", config)
        wards.append(Ward(name, host, broker, path, int(config["metrics"]["port"])))
    return wards


@contextlib.asynccontextmanager
async def running(wards: list[Ward], tmp_path: Path) -> AsyncIterator[None]:
    """Both wards' daemons started and READY; killed at the end whatever happens."""
    async with contextlib.AsyncExitStack() as stack:
        for ward in wards:
            ward.process = await stack.enter_async_context(daemon(ward.config, tmp_path))
        for ward in wards:
            await ward.daemon.wait_ready()
            assert ward.daemon.metrics_port == ward.metrics_port
        yield


async def until_acked(ward: Ward, count: int) -> None:
    """The daemon itself recorded ``count`` integrator acks and has nothing left awaiting one."""
    await until_metric(ward.daemon, 'gaitwatch_mqtt_acks_total{result="acked"}', lambda v: v >= count, f"{count} acks")
    await until_metric(ward.daemon, "gaitwatch_outbox_unacked", lambda v: v == 0, f"no unacked alert on {ward.host}")


def check_per_host(integrator: CentralIntegrator, wards: list[Ward]) -> None:
    alerts = integrator.alerts()
    check_alerts(alerts)
    for ward in wards:
        received = [r for r in integrator.received if "/alert" in r.topic and r.json()["host"] == ward.host]
        assert received, ward.host
        assert all(r.topic.startswith(f"gaitwatch/v1/{ward.name}/{ward.host}/alert") for r in received)
        assert all(r.json()["alert_id"].startswith(f"{ward.host}:") for r in received)
        assert integrator.ids_from(ward.host) == set(ward.daemon.stored)


# -- the tests ------------------------------------------------------------------------------------------------------


def test_the_central_scrape_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `bash scripts/install.sh --dev` installs Debian's prometheus package")
    proc = subprocess.run(
        [promtool, "check", "config", CENTRAL_PROMETHEUS.name],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


async def test_two_wards_bridged_to_a_central_broker_acked_and_scraped_by_one_prometheus(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    central = mosquitto_factory()
    wards = make_wards(mosquitto_factory, central, tmp_path)
    config = central_prometheus_config({w.name: w.metrics_port for w in wards})
    with prometheus(tmp_path / "prometheus", config) as prom:
        async with CentralIntegrator(central.port, CENTRAL_FILTERS) as integrator, running(wards, tmp_path):
            # Both bridges are up and each host's retained status crossed its own bridge.
            await integrator.until(
                lambda: all(integrator.bridge_state(w.name) == b"1" for w in wards), "both bridges connected"
            )
            await integrator.until(
                lambda: all(integrator.on(f"/{w.name}/{w.host}/status") for w in wards), "both hosts' status"
            )
            for ward in wards:
                await ward.daemon.alerts(20)
            await integrator.until(
                lambda: all(
                    len(w.daemon.stored) == 20 and integrator.ids_from(w.host) >= set(w.daemon.stored) for w in wards
                ),
                "20 alerts from each ward at the centre",
            )
            # The acks went back through each ward's bridge to the daemon that raised the alert.
            for ward in wards:
                await until_acked(ward, 20)
                assert (await scrape(ward.metrics_port)).get('gaitwatch_mqtt_acks_total{result="ignored"}', 0) == 0

            # One central Prometheus: both targets up, both hosts' series, every shipped rule loaded and evaluated.
            def both_up() -> list[dict[str, Any]] | None:
                result = prom.get("/api/v1/query", query='up{job="gaitwatch"} == 1')["result"]
                return result if {r["metric"].get("ward") for r in result} == set(WARDS) else None

            up = await prom.until(both_up, "both ward PCs up in prometheus")
            assert {r["metric"]["instance"] for r in up} == {f"127.0.0.1:{w.metrics_port}" for w in wards}

            def per_ward(expr: str) -> Callable[[], dict[str, float] | None]:
                def values() -> dict[str, float] | None:
                    result = prom.get("/api/v1/query", query=expr)["result"]
                    found = {r["metric"]["ward"]: float(r["value"][1]) for r in result}
                    return found if set(found) == set(WARDS) else None

                return values

            alerts = await prom.until(
                per_ward('sum by (ward) (gaitwatch_alerts_total{type="test"}) >= 20'), "alert counters of both"
            )
            assert all(v >= 20 for v in alerts.values())
            await prom.until(per_ward("gaitwatch_outbox_pending"), "outbox_pending of both hosts")
            acked = await prom.until(
                per_ward('gaitwatch_mqtt_acks_total{result="acked"} >= 20'), "acks recorded by both daemons"
            )
            assert all(v >= 20 for v in acked.values())

            expected_rules = set(re.findall(r"^\s*- (?:alert|record): (\S+)", RULES.read_text(), flags=re.MULTILINE))

            def rules_evaluated() -> list[dict[str, Any]] | None:
                groups = prom.get("/api/v1/rules")["groups"]
                rules = [rule for group in groups for rule in group["rules"]]
                evaluated = all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)
                return rules if rules and evaluated and all(r["health"] != "unknown" for r in rules) else None

            rules = await prom.until(rules_evaluated, "every rule evaluated once")
            assert {r["name"] for r in rules} == expected_rules
            assert all(r["health"] == "ok" and not r.get("lastError") for r in rules), rules
            # Nothing is wrong in this deployment: no rule fires (pending ones wait out their `for:`).
            firing = [a for a in prom.get("/api/v1/alerts")["alerts"] if a["state"] == "firing"]
            assert not firing, firing

            for ward in wards:
                assert await ward.daemon.stop() == 0
            await integrator.until(
                lambda: all(integrator.on(f"/{w.host}/status")[-1]["state"] == "offline" for w in wards),
                "both hosts offline at the centre",
            )
    check_per_host(integrator, wards)


async def test_central_broker_outage_loses_nothing_and_the_ward_keeps_its_alerts(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    # The centre keeps the integrator's and the bridges' sessions across its restart (persistence).
    central = mosquitto_factory(persistence=True)
    wards = make_wards(mosquitto_factory, central, tmp_path)
    ward3 = wards[0]
    async with (
        CentralIntegrator(central.port, CENTRAL_FILTERS) as integrator,
        Integrator(ward3.broker.port, [ALERT_FILTER], client_id="ward3-display") as display,
        running(wards, tmp_path),
    ):
        await integrator.until(lambda: all(integrator.bridge_state(w.name) == b"1" for w in wards), "bridges up")
        for ward in wards:
            await ward.daemon.alerts(4)
        await integrator.until(
            lambda: all(
                integrator.ids_from(w.host) >= set(w.daemon.stored) and len(w.daemon.stored) == 4 for w in wards
            ),
            "4 alerts each",
        )
        for ward in wards:
            await until_acked(ward, 4)

        # The link to the centre goes down (here: the central broker stops) while both wards raise alerts.
        await asyncio.to_thread(central.stop)
        for ward in wards:
            await ward.daemon.alerts(20, 0.05)
        await ward3.daemon.until(lambda: len(ward3.daemon.stored) == 24, "24 alerts stored on ward3")
        await wards[1].daemon.until(lambda: len(wards[1].daemon.stored) == 24, "24 alerts stored on ward4")
        # The ward's own display still gets every alert: the ward broker does not need the centre.
        await display.until(lambda: display.alert_ids() >= set(ward3.daemon.stored), "ward3's display")
        for ward in wards:
            # Published to the ward broker, but no integrator has acknowledged them: the daemon keeps them.
            await until_metric(ward.daemon, "gaitwatch_outbox_unacked", lambda v: v >= 20, "20 unacked")
            # ... and to the PC it does not look like a broker outage: its own broker took them all.
            await until_metric(ward.daemon, "gaitwatch_outbox_pending", lambda v: v == 0, "none pending")
            assert (await scrape(ward.metrics_port))["gaitwatch_mqtt_connected"] == 1

        await asyncio.to_thread(central.start)

        await integrator.until_recovered(
            lambda: all(integrator.ids_from(w.host) >= set(w.daemon.stored) for w in wards),
            "every alert raised during the outage at the centre",
        )
        for ward in wards:
            await until_acked(ward, 24)
        assert integrator.bridge_state("ward3") == b"1" and integrator.bridge_state("ward4") == b"1"
        for ward in wards:
            assert await ward.daemon.stop() == 0
    check_per_host(integrator, wards)
    # Alerts raised during the outage reached the centre late but whole: each host's seq unbroken from 1.
    for ward in wards:
        seqs: list[int] = []
        for alert in integrator.alerts():
            if alert["host"] == ward.host and alert["seq"] not in seqs:
                seqs.append(alert["seq"])
        assert sorted(seqs) == list(range(1, 25))
