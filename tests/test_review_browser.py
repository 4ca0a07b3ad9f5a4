"""``gaitwatch review`` in a real headless Chromium (Playwright): open a generated recording, label an episode
with the keyboard, reload, and find the label on the page and in the CSV. Plus the command's start-up errors.

Set ``GAITWATCH_REVIEW_SCREENSHOT=PATH`` to keep the page's screenshot (the README's is made so)."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser import chromium_executable, review_server
from ward_recording import ward_recording

from gaitwatch.tools.cli import main

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in .[dev])")

BROWSER = chromium_executable()


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("review")
    rec, _ = ward_recording(people=3, duration_s=36.0, segment_s=12.0, seed=4)
    rec.save(folder / "ward.npz")
    return folder / "ward.npz"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if BROWSER == "":
        pytest.skip("no Chromium: run scripts/install.sh --dev (Debian's chromium) or playwright install chromium")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=BROWSER or None, headless=True)
        yield b
        b.close()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_label_with_the_keyboard_reload_and_find_it(ward: Path, browser: object, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    with review_server([str(ward), "--labels", str(labels), "--rater", "dr_ada"]) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        page.wait_for_function("document.getElementById('status').textContent.includes('episodes loaded')")
        assert page.inner_text("#rater") == "dr_ada"
        # Person #1 is selected; step 2 s in, mark the start, step 6 s on, pick pattern 2 (shuffling), abnormal.
        for _ in range(2):
            page.keyboard.press("Shift+ArrowRight")
        page.keyboard.press("[")
        for _ in range(6):
            page.keyboard.press("Shift+ArrowRight")
        page.keyboard.press("2")
        page.keyboard.press("a")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('saved')")
        # Next person, to the end of their track, normal from their first frame (no mark).
        page.keyboard.press("ArrowDown")
        page.keyboard.press("End")
        page.keyboard.press("n")
        page.wait_for_function("document.querySelectorAll('#episodes tbody tr').length === 2")

        rows = _rows(labels)
        assert [(r["subject"], r["label"], r["pattern"], r["rater"]) for r in rows] == [
            ("1", "abnormal", "shuffling", "dr_ada"),
            ("2", "normal", "", "dr_ada"),
        ]
        assert float(rows[0]["t_start"]) == pytest.approx(2.0, abs=1e-3)
        assert float(rows[0]["t_end"]) == pytest.approx(8.0, abs=1e-3)
        assert rows[0]["recording"] == os.path.relpath(ward, tmp_path)  # relative to the CSV's folder

        # The page after a reload (a crashed browser would see the same): both episodes are shown.
        page.reload()
        page.wait_for_function("document.querySelectorAll('#episodes tbody tr').length === 2")
        text = page.inner_text("#episodes")
        assert "abnormal" in text and "shuffling" in text and "dr_ada" in text
        # The system's windows arrive once the gait stage has run over the recording.
        page.wait_for_function("!document.getElementById('metrics').textContent.includes('analysing')")
        page.keyboard.press("Home")
        for _ in range(9):
            page.keyboard.press("Shift+ArrowRight")
        page.wait_for_function("document.getElementById('metrics').textContent.includes('cadence')")
        shot = os.environ.get("GAITWATCH_REVIEW_SCREENSHOT")
        page.screenshot(path=shot or str(tmp_path / "review.png"), full_page=True)

        # Deleting with the keyboard: click the first episode, Delete.
        page.click("#episodes tbody tr:first-child td:first-child")
        page.keyboard.press("Delete")
        page.wait_for_function("document.querySelectorAll('#episodes tbody tr').length === 1")
        assert [r["subject"] for r in _rows(labels)] == ["2"]
        assert errors == []


def test_another_raters_rows_are_kept_and_read_only(ward: Path, browser: object, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    name = os.path.relpath(ward, tmp_path)
    labels.write_text(
        f"recording,subject,t_start,t_end,rater,label,pattern,note\n{name},3,0.000,12.000,dr_bo,unusable,,hidden\n"
    )
    with review_server([str(ward), "--labels", str(labels), "--rater", "dr_ada"]) as server:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(server.url)
        page.wait_for_function("document.querySelectorAll('#episodes tbody tr').length === 1")
        assert page.locator("#episodes tbody tr button").count() == 0  # no delete button on dr_bo's row
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")  # person #3
        page.keyboard.press("End")
        page.keyboard.press("u")
        page.wait_for_function("document.querySelectorAll('#episodes tbody tr').length === 2")
    assert sorted((r["rater"], r["label"], r["note"]) for r in _rows(labels)) == [
        ("dr_ada", "unusable", ""),
        ("dr_bo", "unusable", "hidden"),
    ]


def test_bad_input_gives_a_clear_error_and_exit_code(
    ward: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.csv"
    assert main(["review", str(tmp_path / "missing.npz"), "--labels", str(labels)]) == 66
    assert "missing.npz: no such recording" in capsys.readouterr().err
    assert main(["review", str(ward), "--labels", str(tmp_path / "nowhere" / "labels.csv")]) == 73
    assert "no such folder" in capsys.readouterr().err
    not_dir = tmp_path / "a_file"
    not_dir.write_text("x")
    assert main(["review", str(ward), "--labels", str(not_dir / "labels.csv")]) == 73
    capsys.readouterr()
    other = tmp_path / "other.csv"
    other.write_text("recording,subject,label\nward.npz,s1,normal\n")
    assert main(["review", str(ward), "--labels", str(other)]) == 65
    assert "not an episode labels file" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # In a subprocess: the server runs its own event loop (Playwright's may be running in this thread).
        cli = [sys.executable, "-m", "gaitwatch.tools.cli", "review", str(ward), "--labels", str(labels)]
        done = subprocess.run([*cli, "--port", str(port)], capture_output=True, text=True, check=False)
    assert done.returncode == 73
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr


# Loopback only: never through a proxy the environment may name.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with OPENER.open(req) as resp:
        answer: dict[str, object] = json.load(resp)
    return answer


def test_two_raters_on_one_file_at_once_keep_each_others_rows(ward: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    with (
        review_server([str(ward), "--labels", str(labels), "--rater", "dr_ada"]) as ada,
        review_server([str(ward), "--labels", str(labels), "--rater", "dr_bo"]) as bo,
    ):
        for server, label in ((ada, "normal"), (bo, "abnormal"), (ada, "fall")):
            episode = {"recording": "0", "subject": "1", "t_start": 1.0, "t_end": 5.0, "label": label}
            _post(server.url + "api/episodes", episode)
        # dr_bo's page, reloaded, shows dr_ada's rows too; it cannot delete them.
        with OPENER.open(bo.url + "api/episodes?recording=0") as resp:
            shown = json.load(resp)["episodes"]
        assert sorted((e["rater"], e["label"], e["mine"]) for e in shown) == [
            ("dr_ada", "fall", False),
            ("dr_ada", "normal", False),
            ("dr_bo", "abnormal", True),
        ]
        theirs = next(e["id"] for e in shown if e["rater"] == "dr_ada")
        req = urllib.request.Request(bo.url + f"api/episodes/{theirs}", method="DELETE")
        with pytest.raises(urllib.error.HTTPError) as refused:
            OPENER.open(req)
        assert refused.value.code == 403
    assert sorted((r["rater"], r["label"]) for r in _rows(labels)) == [
        ("dr_ada", "fall"),
        ("dr_ada", "normal"),
        ("dr_bo", "abnormal"),
    ]


def test_a_local_video_plays_under_the_skeletons_on_the_recordings_clock(
    ward: Path, browser: object, tmp_path: Path
) -> None:
    """The clinician's own video file is opened in the browser only (an object URL): the server never sees it."""
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "ward.webm"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"VP80"), 15.0, (1280, 720))
    frame = np.zeros((720, 1280, 3), dtype=np.uint8)
    for i in range(15 * 12):
        frame[:] = (i * 2) % 255
        writer.write(frame)
    writer.release()
    with review_server([str(ward), "--labels", str(tmp_path / "labels.csv")]) as server:
        page = browser.new_page()  # type: ignore[attr-defined]
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(server.url)
        page.wait_for_function("document.getElementById('status').textContent.includes('episodes loaded')")
        page.set_input_files("#video-file", str(video))
        page.wait_for_function("document.getElementById('video').readyState >= 1")
        for _ in range(3):
            page.keyboard.press("Shift+ArrowRight")
        page.wait_for_function("Math.abs(document.getElementById('video').currentTime - S.t) < 0.1")
        assert page.evaluate("S.t") == pytest.approx(3.0, abs=0.2)
        assert page.evaluate("getComputedStyle(document.getElementById('video')).display") == "block"
    assert all(u.startswith(server.url) or u.startswith("blob:") for u in requests)
