"""What a SIGHUP reload can apply to a running daemon, and what needs a restart.

Reloaded in place (no frame, track or open alert is lost):
- ``service.log_level``;
- ``[alerts]``: the alert policy's thresholds, from the next gait window on (open alerts keep their state);
- per camera (same ``id`` and ``source``): ``zone``, ``stale_after_s``, ``min_processed_fps``,
  ``degraded_after_s``.

Everything else (cameras added, removed or re-pointed, detector, tracker, pose, gait windows, MQTT, metrics,
outbox, state directory, identity) needs ``systemctl restart gaitwatch``: those parts hold models, sockets,
files or per-person history that a swap would lose or corrupt. The new config is validated completely first;
an invalid one changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from gaitwatch.daemon.settings import Settings

RELOADABLE_CAMERA_KEYS: Final = frozenset({"zone", "stale_after_s", "min_processed_fps", "degraded_after_s"})


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """``applied``: key paths whose new values take effect now; ``needs_restart``: key paths that changed
    but keep their running value until a restart."""

    applied: tuple[str, ...]
    needs_restart: tuple[str, ...]


def _changed_keys(prefix: str, old: Any, new: Any) -> list[str]:
    """Key paths (``section.key``) whose values differ between two dumped settings trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        out: list[str] = []
        for key in keys:
            out.extend(_changed_keys(f"{prefix}.{key}" if prefix else key, old.get(key), new.get(key)))
        return out
    return [] if old == new else [prefix]


def plan_reload(old: Settings, new: Settings) -> ReloadPlan:
    applied: list[str] = []
    restart: list[str] = []
    old_tree, new_tree = old.model_dump(mode="json"), new.model_dump(mode="json")
    for section in sorted(set(old_tree) | set(new_tree)):
        if section == "cameras":
            continue
        for key in _changed_keys(section, old_tree.get(section), new_tree.get(section)):
            (applied if key == "service.log_level" or section == "alerts" else restart).append(key)
    old_cams = {c.id: c for c in old.cameras}
    new_cams = {c.id: c for c in new.cameras}
    if old_cams.keys() != new_cams.keys():
        restart.append("cameras (added or removed)")
    for cam_id in sorted(old_cams.keys() & new_cams.keys()):
        before, after = old_cams[cam_id].model_dump(mode="json"), new_cams[cam_id].model_dump(mode="json")
        for key in _changed_keys("", before, after):
            path = f"cameras[{cam_id}].{key}"
            (applied if key in RELOADABLE_CAMERA_KEYS else restart).append(path)
    return ReloadPlan(tuple(applied), tuple(restart))


def merge_reloadable(old: Settings, new: Settings) -> Settings:
    """The settings the daemon runs with after a reload: the old ones with every reloadable value from the
    new ones (so that ``needs_restart`` keys keep describing what actually runs)."""
    new_cams = {c.id: c for c in new.cameras}
    cameras = []
    for cam in old.cameras:
        after = new_cams.get(cam.id)
        if after is None:
            cameras.append(cam)
            continue
        cameras.append(cam.model_copy(update={k: getattr(after, k) for k in RELOADABLE_CAMERA_KEYS}))
    service = old.service.model_copy(update={"log_level": new.service.log_level})
    return old.model_copy(update={"service": service, "alerts": new.alerts, "cameras": cameras})
