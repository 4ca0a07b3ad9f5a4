"""Agreement between raters and with the system (``gaitwatch agreement``), checked against independent
computations on generated raters whose agreement is known."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from gaitwatch.gait.offline.agreement import (
    NO_CALL,
    SystemWindow,
    agreement_report,
    cluster_bootstrap,
    cohen_kappa,
    fleiss_kappa,
    majority_codes,
    rated_windows,
    simulated_episodes,
    with_system,
)
from gaitwatch.gait.offline.episodes import Episode, read_episodes, write_episodes
from gaitwatch.tools.cli import main

RATERS = ("ana", "ben", "cleo")


def _fleiss_by_pairs(ratings: np.ndarray) -> float:
    """Fleiss' kappa written the other way round: observed agreement as the share of agreeing ordered rater
    pairs per item, chance agreement from the pooled category shares."""
    full = ratings[np.all(ratings != NO_CALL, axis=1)]
    n_raters = full.shape[1]
    agree = [
        sum(1 for i in range(n_raters) for j in range(n_raters) if i != j and row[i] == row[j])
        / (n_raters * (n_raters - 1))
        for row in full
    ]
    pooled = full.ravel()
    pe = sum((np.count_nonzero(pooled == c) / pooled.shape[0]) ** 2 for c in np.unique(pooled))
    return float((np.mean(agree) - pe) / (1 - pe))


def test_cohen_kappa_matches_scikit_learn_on_generated_raters() -> None:
    for seed, accuracy in ((1, 0.9), (2, 0.7), (3, 0.4)):
        rw = rated_windows(simulated_episodes(15, RATERS, accuracy, seed=seed))
        report = agreement_report(rw, n_boot=20)
        for pair, (i, j) in zip(report["pairs"], combinations(range(3), 2), strict=True):
            expected = cohen_kappa_score(rw.ratings[:, i], rw.ratings[:, j])
            assert pair["kappa"]["value"] == pytest.approx(expected, abs=5e-4)
            assert round(pair["kappa"]["value"], 3) == round(expected, 3)
            assert pair["percent_agreement"]["value"] == pytest.approx(
                np.mean(rw.ratings[:, i] == rw.ratings[:, j]), abs=1e-6
            )


def test_cohen_kappa_ignores_items_one_rater_did_not_call() -> None:
    a = np.array([1, 2, 2, 1, 0, 2, 1], dtype=np.int8)
    b = np.array([1, 2, 1, 1, 2, 0, 2], dtype=np.int8)
    both = (a != 0) & (b != 0)
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a[both], b[both]))


def test_fleiss_kappa_hand_checked_example() -> None:
    # Items (3 raters): NNN, NNA, AAA, NAA. Per-item agreement 1, 1/3, 1, 1/3 -> mean 2/3; category shares
    # 1/2 and 1/2 -> chance 1/2; kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3.
    ratings = np.array([[1, 1, 1], [1, 1, 2], [2, 2, 2], [1, 2, 2]], dtype=np.int8)
    assert fleiss_kappa(ratings) == pytest.approx(1 / 3)
    # A row someone did not call is left out.
    assert fleiss_kappa(np.vstack([ratings, [[0, 2, 1]]]).astype(np.int8)) == pytest.approx(1 / 3)


def test_fleiss_kappa_matches_an_independent_computation_on_generated_raters() -> None:
    rw = rated_windows(simulated_episodes(20, RATERS, 0.75, seed=5))
    assert fleiss_kappa(rw.ratings) == pytest.approx(_fleiss_by_pairs(rw.ratings), abs=1e-9)
    # Two raters: Fleiss' kappa is Scott's pi, close to Cohen's kappa when the raters' marginals agree.
    two = rw.ratings[:, :2]
    assert fleiss_kappa(two) == pytest.approx(cohen_kappa_score(two[:, 0], two[:, 1]), abs=0.02)


def test_confidence_intervals_cover_the_generating_agreement() -> None:
    """The expected kappa of generated raters is accuracy**2; the recording-bootstrap 95 % interval must cover
    it in >= 90 % of repeated trials (Cohen for one pair and Fleiss)."""
    accuracy, trials = 0.8, 40
    cohen_hits = fleiss_hits = 0
    for trial in range(trials):
        rw = rated_windows(simulated_episodes(20, RATERS, accuracy, seed=1000 + trial))
        report = agreement_report(rw, n_boot=200, seed=trial)
        lo, hi = report["pairs"][0]["kappa"]["ci95"]
        cohen_hits += lo <= accuracy**2 <= hi
        lo, hi = report["fleiss"]["kappa"]["ci95"]
        fleiss_hits += lo <= accuracy**2 <= hi
    assert cohen_hits / trials >= 0.9
    assert fleiss_hits / trials >= 0.9


def test_bootstrap_by_recording_is_wider_than_by_window() -> None:
    """Windows of one recording repeat the same episode's call: resampling windows understates uncertainty."""
    rw = rated_windows(simulated_episodes(20, RATERS, 0.8, seed=9))
    a, b = rw.ratings[:, 0], rw.ratings[:, 1]
    stat = {"k": lambda idx: cohen_kappa(a[idx], b[idx])}
    lo_r, hi_r = cluster_bootstrap(stat, rw.recording, n_boot=300)["k"]
    lo_w, hi_w = cluster_bootstrap(stat, np.arange(len(rw)), n_boot=300)["k"]
    assert hi_r - lo_r > 1.5 * (hi_w - lo_w)


def test_windows_follow_episodes_and_unusable_is_no_call() -> None:
    eps = [
        Episode("r.npz", "1", 0.0, 6.0, "ana", "normal"),
        Episode("r.npz", "1", 6.0, 10.0, "ana", "unusable"),
        Episode("r.npz", "1", 0.0, 3.0, "ben", "abnormal", "shuffling"),
        Episode("r.npz", "1", 3.0, 10.0, "ben", "normal"),
        Episode("r.npz", "1", 1.0, 1.5, "ben", "fall"),  # an event: not a gait call
    ]
    rw = rated_windows(eps, window_s=2.0)
    assert rw.raters == ("ana", "ben")
    assert rw.t_start.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    # ana: N N N - - ; ben: A (0-2), window 2-4 has 1 s abnormal / 1 s normal -> the first one wins, then N N N
    assert rw.ratings[:, 0].tolist() == [1, 1, 1, 0, 0]
    assert rw.ratings[:, 1].tolist() == [2, 2, 1, 1, 1]
    assert majority_codes(rw.ratings).tolist() == [0, 0, 1, 1, 1]


def test_system_against_raters_and_majority() -> None:
    eps = simulated_episodes(12, RATERS, 0.85, seed=4)
    rw = rated_windows(eps)
    rng = np.random.default_rng(0)
    maj = majority_codes(rw.ratings)
    # A system that calls each window like the majority 80 % of the time, as 8-s windows every second.
    system: dict[str, list[SystemWindow]] = {}
    for i in range(len(rw)):
        truth = "abnormal" if maj[i] == 2 else "normal"
        call = truth if rng.random() < 0.8 else ("normal" if truth == "abnormal" else "abnormal")
        mid = 0.5 * (rw.t_start[i] + rw.t_end[i])
        system.setdefault(str(rw.recording[i]), []).append(SystemWindow(str(rw.subject[i]), mid - 0.4, mid + 0.4, call))
    rw = with_system(rw, system)
    assert rw.system is not None and np.all(rw.system != 0)
    report = agreement_report(rw, n_boot=50)
    called = maj != 0
    tn, fp, fn, tp = confusion_matrix(maj[called], rw.system[called], labels=[1, 2]).ravel()
    vm = report["system"]["vs_majority"]
    assert vm["sensitivity"]["value"] == pytest.approx(tp / (tp + fn), abs=1e-6)
    assert vm["specificity"]["value"] == pytest.approx(tn / (tn + fp), abs=1e-6)
    for v, i in zip(report["system"]["vs_raters"], range(3), strict=True):
        assert v["kappa"]["value"] == pytest.approx(cohen_kappa_score(rw.system, rw.ratings[:, i]), abs=1e-6)
        lo, hi = v["kappa"]["ci95"]
        assert lo <= v["kappa"]["value"] <= hi


def test_episode_file_round_trip_is_atomic_and_sorted(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    eps = [
        Episode("b.npz", "10", 5.0, 9.0, "ana", "abnormal", "limping", "note, with comma"),
        Episode("b.npz", "2", 1.0, 2.5, "ana", "fall"),
        Episode("a.npz", "1", 0.0, 4.0, "ben", "normal"),
    ]
    write_episodes(path, eps)
    back = read_episodes(path)
    assert [(e.recording, e.subject) for e in back] == [("a.npz", "1"), ("b.npz", "2"), ("b.npz", "10")]
    assert back[2].note == "note, with comma" and back[2].pattern == "limping"
    assert back[0].path == tmp_path / "a.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]  # no temporary file left


def test_bad_episode_rows_are_named(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "recording,subject,t_start,t_end,rater,label,pattern,note\nr.npz,1,0,4,ana,normal,,\nr.npz,1,5,4,ana,normal,,\n"
    )
    with pytest.raises(ValueError, match=r"labels.csv:3: t_end"):
        read_episodes(path)
    path.write_text("recording,subject,t_start,t_end,rater,label,pattern,note\nr.npz,1,0,4,ana,wobbly,,\n")
    with pytest.raises(ValueError, match=r"labels.csv:2: label must be one of"):
        read_episodes(path)


def test_agreement_command_writes_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eps = simulated_episodes(6, RATERS, 0.8, seed=3)
    labels = tmp_path / "labels.csv"
    write_episodes(labels, eps)
    # The system's windows as replay --json files, one per recording, named after it.
    sysdir = tmp_path / "replays"
    sysdir.mkdir()
    rw = rated_windows(eps)
    for rec in sorted(set(rw.recording.tolist())):
        sel = rw.recording == rec
        windows = [
            {"track": int(s), "t_start": float(t0) - 3.0, "t_end": float(t0) + 5.0, "valid": True, "label": "normal"}
            for s, t0 in zip(rw.subject[sel], rw.t_start[sel], strict=True)
        ]
        (sysdir / f"{Path(rec).stem}.json").write_text(json.dumps({"windows": windows, "alerts": []}))
    out, png = tmp_path / "agreement.json", tmp_path / "agreement.png"
    args = ["agreement", str(labels), "--system", str(sysdir), "--bootstrap", "50"]
    code = main([*args, "--json", str(out), "--png", str(png)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Fleiss (3 raters)" in printed and "system vs majority" in printed
    report = json.loads(out.read_text())
    assert report["raters"] == list(RATERS) and report["recordings"] == 6
    assert report["system"]["vs_majority"]["specificity"]["value"] == 1.0
    assert report["system"]["vs_majority"]["sensitivity"]["value"] == 0.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_agreement_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agreement", str(tmp_path / "missing.csv")]) == 1
    assert "no such file" in capsys.readouterr().err
    labels = tmp_path / "labels.csv"
    write_episodes(labels, simulated_episodes(2, RATERS, 0.8, seed=3))
    (tmp_path / "other.json").write_text(json.dumps({"windows": []}))
    assert main(["agreement", str(labels), "--system", str(tmp_path / "other.json")]) == 1
    assert "matches a labelled recording" in capsys.readouterr().err
