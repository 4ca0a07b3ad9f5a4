"""A scripted labelling session with ``gaitwatch review`` in headless Chromium, then training and evaluation on
the labels it made, and the raters' agreement.

Generates K ward recordings (2 minutes, 3 people walking at once, each crossing the view every 12 s with a gait
drawn afresh: normal, slow or shuffling; ``tests/ward_recording.py``), starts ``gaitwatch review`` on them and
labels every person with the keyboard as a clinician would: select the person, Home, play at ``--speed``, and at
each change of gait (and at the end of the track) pause (space), take ``--decide`` seconds to decide, press the
pattern digit and the label key (the episode runs from the end of the previous one to the cursor), resume. The
first recording is timed from opening the page to the last saved episode. Rater "a" follows the generated
truth; rater "b" calls each run wrongly with probability ``--b-error``. Then ``train-gait`` on the first K-1
recordings' labels, ``eval-gait --model`` on the held-out one, and ``agreement --replay``.

Usage: ``python bench/review_session.py --out DIR [--recordings K] [--speed 4] [--decide 1.0] [--json OUT]``.
Needs Playwright and a Chromium (``scripts/install.sh --dev``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import chromium_executable, review_server
from ward_recording import Segment, ward_recording

from gaitwatch.gait.offline.episodes import read_episodes, write_episodes

PATTERN_DIGIT = {"slow": "1", "shuffling": "2"}


def runs(segments: list[Segment], track: int) -> list[tuple[float, float, str]]:
    """Consecutive segments of one person with the same gait, merged: (start, end, pattern)."""
    out: list[tuple[float, float, str]] = []
    for tid, t0, t1, pattern in segments:
        if tid != track:
            continue
        if out and out[-1][2] == pattern:
            out[-1] = (out[-1][0], t1, pattern)
        else:
            out.append((t0, t1, pattern))
    return out


def label_recording(
    page: Any, segments: list[Segment], people: int, speed: float, decide_s: float, error: float, rng: Any
) -> int:
    """Label every person of the open recording; returns the number of episodes saved."""
    n = 0
    page.select_option("#speed", str(int(speed)) if speed == int(speed) else str(speed))
    page.keyboard.press("Escape")
    for k in range(people):
        if k:
            page.keyboard.press("ArrowDown")
        page.keyboard.press("Home")
        page.keyboard.press("Space")
        for _, t1, pattern in runs(segments, k + 1):
            while page.evaluate("S.playing") and page.evaluate("S.t") < t1 - 0.05:
                time.sleep(0.03)
            if page.evaluate("S.playing"):
                page.keyboard.press("Space")
            time.sleep(decide_s)
            call = pattern
            if rng.random() < error:
                call = "normal" if pattern != "normal" else "slow"
            before = page.evaluate("S.episodes.length")
            if call == "normal":
                page.keyboard.press("n")
            else:
                page.keyboard.press(PATTERN_DIGIT[call])
                page.keyboard.press("a")
            page.wait_for_function(f"S.episodes.length > {before}")
            n += 1
            if page.evaluate("S.t < S.skel.tracks[S.person].t.at(-1) - 0.1"):
                page.keyboard.press("Space")
    return n


def gaitwatch(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "gaitwatch.tools.cli", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"gaitwatch {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--recordings", type=int, default=4)
    ap.add_argument("--speed", type=float, default=4.0, help="playback speed of the timed recording")
    ap.add_argument("--fast-speed", type=float, default=8.0, help="playback speed of the other labelling passes")
    ap.add_argument("--decide", type=float, default=1.0, help="seconds to decide at each change")
    ap.add_argument("--b-error", type=float, default=0.2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    truth: dict[str, list[Segment]] = {}
    paths = []
    for i in range(args.recordings):
        rec, segs = ward_recording(people=3, duration_s=120.0, seed=100 + i)
        path = args.out / f"ward_{i:02d}.npz"
        rec.save(path)
        truth[path.name] = segs
        paths.append(path)
    labels = args.out / "labels.csv"
    labels.unlink(missing_ok=True)
    result: dict[str, Any] = {"recordings": args.recordings, "people": 3, "duration_s": 120.0}
    rng = np.random.default_rng(0)
    exe = chromium_executable()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe or None, headless=True)
        for rater, error in (("a", 0.0), ("b", args.b_error)):
            with review_server([*map(str, paths), "--labels", str(labels), "--rater", rater]) as server:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                for i, path in enumerate(paths):
                    timed = rater == "a" and i == 0
                    start = time.monotonic()
                    page.goto(f"{server.url}?recording={i}")
                    page.wait_for_function("document.getElementById('status').textContent.includes('loaded')")
                    speed = args.speed if timed else args.fast_speed
                    n = label_recording(page, truth[path.name], 3, speed, args.decide, error, rng)
                    took = time.monotonic() - start
                    print(f"rater {rater} {path.name}: {n} episodes in {took:.1f} s at {speed:g}x", flush=True)
                    if timed:
                        result["timed"] = {"episodes": n, "seconds": round(took, 1), "speed": speed}
                        result["timed"]["decide_s"] = args.decide
                page.close()
        browser.close()
    episodes = read_episodes(labels)
    result["episodes"] = len(episodes)
    held_out = paths[-1].name
    train_csv, test_csv = args.out / "train.csv", args.out / "test.csv"
    write_episodes(train_csv, [e for e in episodes if e.recording != held_out])
    write_episodes(test_csv, [e for e in episodes if e.recording == held_out])
    model = args.out / "site_model.json"
    result["train_gait"] = gaitwatch("train-gait", str(train_csv), "--out", str(model)).strip()
    print(result["train_gait"], flush=True)
    eval_json = args.out / "eval.json"
    print(gaitwatch("eval-gait", str(test_csv), "--model", str(model), "--json", str(eval_json)), flush=True)
    ev = json.loads(eval_json.read_text())
    result["eval_gait_held_out"] = {k: ev[k] for k in ("n", "balanced_accuracy", "sensitivity", "specificity")}
    agree_json = args.out / "agreement.json"
    agree_args = ["--replay", "--json", str(agree_json), "--png", str(args.out / "agreement.png")]
    print(gaitwatch("agreement", str(labels), *agree_args), flush=True)
    ag = json.loads(agree_json.read_text())
    result["agreement"] = {
        "a_vs_b_kappa": ag["pairs"][0]["kappa"],
        "system_vs_majority": ag["system"]["vs_majority"],
    }
    print(json.dumps(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
