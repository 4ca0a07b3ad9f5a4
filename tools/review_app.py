"""The web application behind ``gaitwatch review``: recordings, the gait stage's verdicts, and episode labels.

aiohttp serves one page (``review_static/``) and a small JSON API on a loopback address:
``GET /api/session`` (rater, recordings, label names, patterns, skeleton bones),
``GET /api/recordings/{id}/skeleton`` (each person's 2-D keypoints over time, rounded to 0.1 px: numbers only,
never pixels), ``GET /api/recordings/{id}/analysis`` (the gait stage run over the recording exactly as
``gaitwatch replay`` does: windows with metrics and labels, and alerts), ``GET /api/episodes?recording=ID``, ``POST
/api/episodes`` and ``DELETE /api/episodes/{eid}`` (the rater's own episodes only). Every change rewrites the CSV
atomically before the answer is sent, so what the page shows as saved is on disk.

The server only ever listens where it is told (127.0.0.1 by default) and refuses requests whose ``Host`` is not
that address or ``localhost`` (a web page elsewhere cannot reach it through DNS rebinding), and changes only come
as JSON (a cross-site form cannot send that without the browser asking first).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from gaitwatch.gait.offline.episodes import EPISODE_LABELS, Episode, read_episodes, write_episodes
from gaitwatch.gait.offline.synthetic import PATTERNS
from gaitwatch.gait.recording import Recording
from gaitwatch.pose.keypoints import SKELETON

STATIC_PACKAGE_DIR = "review_static"
# The page's files (package data), served by name only: nothing else on disk is reachable.
STATIC_FILES = {"index.html": "text/html", "review.js": "text/javascript", "review.css": "text/css"}
# Patterns a clinician may name for abnormal gait: the generator's and the classifier's names, plus "other".
ABNORMAL_PATTERNS: tuple[str, ...] = (*(p for p in PATTERNS if p != "normal"), "other")


@dataclass(frozen=True, slots=True)
class ReviewRecording:
    """A recording on the page: ``id`` (URL-safe index), ``name`` (as written in the CSV: relative to the CSV's
    folder where possible) and the loaded data."""

    id: str
    name: str
    path: Path
    recording: Recording


def csv_name(recording: Path, labels: Path) -> str:
    """How the CSV names ``recording``: relative to the CSV's folder (so the folder can move), else absolute."""
    try:
        return os.path.relpath(recording.resolve(), labels.resolve().parent)
    except ValueError:  # another drive (Windows)
        return str(recording.resolve())


def episode_id(e: Episode) -> str:
    """A stable short id of one episode row (its content: identical rows are interchangeable)."""
    return hashlib.sha1(json.dumps(e.row(), sort_keys=True).encode()).hexdigest()[:16]


def skeleton_json(rec: Recording) -> dict[str, Any]:
    """Each track's times and 2-D keypoints (x, y per landmark; null where the pose model saw nothing)."""
    tracks = {}
    for tid in rec.tracks():
        w = rec.track(tid)
        xy = np.round(w.keypoints[:, :, :2].astype(np.float64), 1)
        xy[~np.isfinite(xy)] = np.nan
        tracks[str(tid)] = {
            "t": np.round(w.t, 3).tolist(),
            "kp": [[None if np.isnan(v) else float(v) for v in row.ravel()] for row in xy],
        }
    pts = rec.keypoints[:, :, :2].reshape(-1, 2)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if pts.shape[0]:
        lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)
        bounds = [float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])]
    else:
        bounds = [0.0, 0.0, 1.0, 1.0]
    return {"tracks": tracks, "bounds": bounds}


def analysis_json(rec: Recording, model: str) -> dict[str, Any]:
    """The gait stage over ``rec`` (as ``gaitwatch replay --model MODEL``), windows and alerts."""
    from gaitwatch.gait.offline.replay import analyze_recording
    from gaitwatch.tools.cmd_replay import load_classifier, result_json

    return result_json(analyze_recording(rec, classifier=load_classifier(model)))


@dataclass
class ReviewState:
    """Everything the server holds: the recordings, every rater's episodes, and the CSV they are saved to."""

    labels: Path
    rater: str
    recordings: dict[str, ReviewRecording]
    model: str = "default"
    episodes: list[Episode] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    analyses: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    skeletons: dict[str, dict[str, Any]] = field(default_factory=dict)

    def by_name(self, name: str) -> ReviewRecording | None:
        return next((r for r in self.recordings.values() if r.name == name), None)

    def episode_json(self, e: Episode) -> dict[str, Any]:
        rec = self.by_name(e.recording)
        return {
            **e.row(),
            "t_start": e.t_start,
            "t_end": e.t_end,
            "id": episode_id(e),
            "recording_id": rec.id if rec else None,
            "mine": e.rater == self.rater,
        }

    def analysis(self, rid: str) -> asyncio.Future[dict[str, Any]]:
        """The gait stage's output for one recording, computed once in a worker thread (a 2-minute recording of
        3 people takes ~10-30 s on a 2-core PC: ``prefetch`` starts them all when the server starts)."""
        fut = self.analyses.get(rid)
        if fut is None:
            rec = self.recordings[rid].recording
            fut = self.analyses[rid] = asyncio.get_running_loop().run_in_executor(None, analysis_json, rec, self.model)
        return fut

    async def prefetch(self) -> None:
        """Analyse every recording in turn (one at a time: the PC may be running the daemon too)."""
        for rid in self.recordings:
            with contextlib.suppress(Exception):  # a failure is reported when the page asks for it
                await self.analysis(rid)

    def _merged(self, episodes: list[Episode]) -> list[Episode]:
        """This rater's rows from ``episodes`` with every other rater's rows as the file has them now, so that
        raters labelling the same file from two servers do not undo each other's work."""
        try:
            on_disk = read_episodes(self.labels)
        except (OSError, ValueError):
            on_disk = [e for e in self.episodes if e.rater != self.rater]
        return [e for e in on_disk if e.rater != self.rater] + [e for e in episodes if e.rater == self.rater]

    async def refresh(self) -> None:
        """Take up other raters' rows written to the file since the last look."""
        async with self.lock:
            self.episodes = await asyncio.to_thread(self._merged, self.episodes)

    async def save(self, episodes: list[Episode]) -> None:
        """Write this rater's ``episodes`` (with the other raters' current rows) atomically, then make them
        current (a failed write changes nothing)."""

        def merge_and_write() -> list[Episode]:
            merged = self._merged(episodes)
            write_episodes(self.labels, merged)
            return merged

        self.episodes = await asyncio.to_thread(merge_and_write)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def build_app(state: ReviewState, allowed_hosts: frozenset[str]) -> web.Application:
    """The aiohttp application: the page, its static files and the JSON API."""
    static = files("gaitwatch.tools") / STATIC_PACKAGE_DIR

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0].strip("[]")
        if host not in allowed_hosts:
            return _error(403, f"requests for host {host!r} are refused: open the address gaitwatch review printed")
        if request.method in ("POST", "PUT") and request.content_type != "application/json":
            return _error(415, "changes must be sent as application/json")
        return await handler(request)

    async def page_file(name: str) -> web.Response:
        content_type = STATIC_FILES[name]
        body = await asyncio.to_thread((static / name).read_bytes)
        return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "no-store"})

    async def index(request: web.Request) -> web.Response:
        return await page_file("index.html")

    async def static_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES or name == "index.html":
            raise web.HTTPNotFound()
        return await page_file(name)

    async def session(request: web.Request) -> web.Response:
        recs = []
        for r in state.recordings.values():
            rec = r.recording
            recs.append(
                {
                    "id": r.id,
                    "name": r.name,
                    "tracks": [str(t) for t in rec.tracks()],
                    "t_start": float(rec.t.min()) if len(rec) else 0.0,
                    "t_end": float(rec.t.max()) if len(rec) else 0.0,
                    "fps": float(rec.meta.get("fps") or 15.0),
                }
            )
        return web.json_response(
            {
                "rater": state.rater,
                "labels_file": str(state.labels),
                "recordings": recs,
                "labels": list(EPISODE_LABELS),
                "patterns": list(ABNORMAL_PATTERNS),
                "skeleton": [[int(a), int(b)] for a, b in SKELETON],
            }
        )

    def recording_of(request: web.Request) -> ReviewRecording:
        rec = state.recordings.get(request.match_info.get("rid", "") or request.query.get("recording", ""))
        if rec is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "no such recording"}), content_type="application/json")
        return rec

    async def skeleton(request: web.Request) -> web.StreamResponse:
        rec = recording_of(request)
        if rec.id not in state.skeletons:
            state.skeletons[rec.id] = await asyncio.to_thread(skeleton_json, rec.recording)
        resp = web.json_response(state.skeletons[rec.id])
        resp.enable_compression()
        return resp

    async def analysis(request: web.Request) -> web.StreamResponse:
        rec = recording_of(request)
        try:
            result = await state.analysis(rec.id)
        except (OSError, ValueError, KeyError) as exc:
            return _error(500, f"the gait stage failed on {rec.name}: {exc}")
        resp = web.json_response(result)
        resp.enable_compression()
        return resp

    async def list_episodes(request: web.Request) -> web.Response:
        rec = recording_of(request)
        await state.refresh()
        eps = [state.episode_json(e) for e in state.episodes if e.recording == rec.name]
        return web.json_response({"episodes": eps})

    async def add_episode(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            rec = state.recordings.get(str(body.get("recording", "")))
            if rec is None:
                raise ValueError("no such recording")
            subject = str(body.get("subject", ""))
            if subject not in {str(t) for t in rec.recording.tracks()}:
                raise ValueError(f"recording {rec.name} has no person {subject!r}")
            label = str(body.get("label", ""))
            pattern = str(body.get("pattern") or "") if label == "abnormal" else ""
            if pattern and pattern not in ABNORMAL_PATTERNS:
                raise ValueError(f"unknown pattern {pattern!r}")
            t0, t1 = sorted((float(body["t_start"]), float(body["t_end"])))
            ep = Episode(
                rec.name,
                subject,
                round(t0, 3),
                round(t1, 3),
                state.rater,
                label,
                pattern,
                str(body.get("note") or "").replace("\n", " ")[:500],
                rec.path,
            )
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            return _error(400, str(exc))
        async with state.lock:
            try:
                await state.save([*state.episodes, ep])
            except OSError as exc:
                return _error(500, f"could not save {state.labels}: {exc}")
        return web.json_response({"episode": state.episode_json(ep), "saved": len(state.episodes)})

    async def delete_episode(request: web.Request) -> web.Response:
        eid = request.match_info["eid"]
        async with state.lock:
            keep, gone = [], None
            for e in state.episodes:
                if gone is None and episode_id(e) == eid:
                    gone = e
                else:
                    keep.append(e)
            if gone is None:
                return _error(404, "no such episode")
            if gone.rater != state.rater:
                return _error(403, f"episodes of rater {gone.rater!r} are theirs to change")
            try:
                await state.save(keep)
            except OSError as exc:
                return _error(500, f"could not save {state.labels}: {exc}")
        return web.json_response({"deleted": eid, "saved": len(state.episodes)})

    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app.router.add_get("/", index)
    app.router.add_get("/api/session", session)
    app.router.add_get("/api/recordings/{rid}/skeleton", skeleton)
    app.router.add_get("/api/recordings/{rid}/analysis", analysis)
    app.router.add_get("/api/episodes", list_episodes)
    app.router.add_post("/api/episodes", add_episode)
    app.router.add_delete("/api/episodes/{eid}", delete_episode)
    app.router.add_get("/static/{name}", static_file)
    return app


def load_recordings(paths: list[Path], labels: Path) -> dict[str, ReviewRecording]:
    """The recordings, by id; OSError / ValueError name the file that is missing or unreadable."""
    recs: dict[str, ReviewRecording] = {}
    for i, path in enumerate(paths):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such recording")
        recs[str(i)] = ReviewRecording(str(i), csv_name(path, labels), path, Recording.load(path))
    return recs
