"""Render the Grafana dashboard (config/grafana/gaitwatch-dashboard.json) from real data, without Grafana.

No Grafana server is available from this project's package registries, so this script does what Grafana would:
it runs the real daemon (the shipped clip as a live, looping camera, the full pipeline) against a real mosquitto,
has a real Prometheus (Debian's ``prometheus``) scrape it every second, evaluates every panel's exact PromQL
through Prometheus's HTTP API (``$instance`` = all, ``$__rate_interval`` = 15 s), and draws the panels on the
dashboard's own grid with matplotlib. Midway the broker is stopped for ``--outage-s`` while test alerts keep
coming, so the MQTT, outbox and alert panels show an outage and its recovery.

    .venv/bin/python bench/render_dashboard.py --seconds 150 --out bench/dashboard.png

A panel whose query fails or returns nothing is drawn with the reason: the picture doubles as a check of every
expression against real data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gaitwatch.tools.local_broker import Mosquitto, free_port

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "config" / "grafana" / "gaitwatch-dashboard.json"
RATE_INTERVAL = "15s"


async def wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def start_prometheus(workdir: Path, target_port: int) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("render_dashboard: needs Debian's prometheus package (bash scripts/install.sh --dev)")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: gaitwatch\n    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port


async def run_daemon(seconds: float, outage_s: float, workdir: Path, metrics_port: int) -> None:
    from gaitwatch.daemon.service import Service
    from gaitwatch.daemon.settings import parse_settings
    from gaitwatch.gait.types import AlertPhase
    from gaitwatch.tools.demo import shipped_clip

    broker = Mosquitto(workdir)
    broker.start()
    settings = parse_settings(
        {
            "service": {"site": "demo", "host": "ward3-pc1", "state_dir": str(workdir / "state")},
            "cameras": [{"id": "bay1", "source": str(shipped_clip()), "loop": True, "fps": 7.0}],
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "reconnect_initial_s": 0.5, "reconnect_max_s": 2.0},
            "metrics": {"address": "127.0.0.1", "port": metrics_port},
        }
    )
    service = Service(settings)
    run = asyncio.create_task(service.run())
    await service.ready.wait()
    started = time.monotonic()
    outage_at = seconds * 0.4
    outage_done = False
    try:
        while time.monotonic() - started < seconds:
            elapsed = time.monotonic() - started
            emitted = await service.emit_technical_alert("test", priority="low")
            await service.emit_technical_alert("test", AlertPhase.END, incident_id=emitted.incident_id)
            if not outage_done and elapsed >= outage_at and broker.running:
                broker.stop()
            if not outage_done and elapsed >= outage_at + outage_s and not broker.running:
                broker.start()
                outage_done = True
            await asyncio.sleep(3.0)
    finally:
        service.request_stop()
        await run
        broker.stop()


def query_range(port: int, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    expr = expr.replace('{instance=~"$instance"}', "").replace('instance=~"$instance"', "")
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "2"})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query_range?{params}", timeout=30) as response:
        body = json.loads(response.read())
    if body.get("status") != "success":
        raise RuntimeError(body.get("error", "query failed"))
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def draw(dashboard: dict[str, Any], port: int, start: float, end: float, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(18, rows * 0.42))
    fig.suptitle(f"{dashboard['title']} (rendered from a real daemon and Prometheus, no Grafana)", fontsize=13)
    grid = fig.add_gridspec(rows, 24, hspace=1.6, wspace=1.2)
    problems: list[str] = []
    for panel in panels:
        g = panel["gridPos"]
        ax = fig.add_subplot(grid[g["y"] : g["y"] + g["h"], g["x"] : g["x"] + g["w"]])
        ax.set_title(panel["title"], fontsize=10)
        series: list[tuple[str, list[float], list[float]]] = []
        for target in panel["targets"]:
            try:
                for item in query_range(port, target["expr"], start, end):
                    xs = [float(v[0]) - start for v in item["values"]]
                    ys = [float(v[1]) for v in item["values"]]
                    series.append((legend(target["legendFormat"], item["metric"]), xs, ys))
            except Exception as exc:
                problems.append(f"{panel['title']}: {exc}")
        if not series:
            problems.append(f"{panel['title']}: no data")
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            continue
        if panel["type"] == "stat":
            ax.axis("off")
            text = "   ".join(f"{name}: {ys[-1]:g}" for name, _, ys in series if ys)
            ax.text(0.5, 0.4, text, ha="center", va="center", fontsize=16, transform=ax.transAxes)
            continue
        for name, xs, ys in series[:12]:
            ax.plot(xs, ys, label=name, linewidth=1.2)
        ax.set_xlabel("seconds", fontsize=8)
        ax.tick_params(labelsize=7)
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        if unit and unit != "none":
            ax.set_ylabel(unit, fontsize=8)
        ax.legend(fontsize=6, loc="upper left", ncol=2)
    fig.savefig(out, dpi=80)
    return problems


async def main_async(args: argparse.Namespace) -> int:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="gaitwatch-dashboard-") as tmp:
        workdir = Path(tmp)
        metrics_port = free_port()
        prometheus, prom_port = start_prometheus(workdir, metrics_port)
        try:
            await wait_port(prom_port)
            start = time.time()
            await run_daemon(args.seconds, args.outage_s, workdir, metrics_port)
            end = time.time()
            problems = draw(dashboard, prom_port, start, end, args.out)
        finally:
            prometheus.terminate()
            prometheus.wait(10)
    for problem in problems:
        print(f"render_dashboard: {problem}")
    print(f"render_dashboard: panels={len(dashboard['panels'])} problems={len(problems)} out={args.out}")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=150.0, help="how long the daemon runs")
    parser.add_argument("--outage-s", type=float, default=30.0, help="how long the broker is down midway")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "dashboard.png")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
