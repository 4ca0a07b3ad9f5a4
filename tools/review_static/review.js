// gaitwatch review: plays recorded skeletons, shows the gait stage's windows and alerts, and saves the
// clinician's episodes (every change is written to the labels CSV by the server before "saved" shows).
"use strict";

const LABEL_KEYS = { n: "normal", a: "abnormal", f: "fall", s: "sit_to_stand", b: "bed_exit", u: "unusable" };
const LABEL_COLOURS = {
  normal: "#2e7d32", abnormal: "#c62828", unusable: "#9e9e9e",
  fall: "#6a1b9a", sit_to_stand: "#1565c0", bed_exit: "#ef6c00",
};
const SYSTEM_COLOURS = { normal: "#a5d6a7", abnormal: "#ef9a9a", unknown: "#e0e0e0" };
// the gait measures a clinician reads first (all of them are in the analysis JSON)
const KEY_FEATURES = [
  "speed_bh_s", "step_length_ll", "step_time_cv", "stride_time_cv", "step_asymmetry", "arm_swing_ll",
  "trunk_lean_deg", "harmonic_ratio", "freeze_index", "halt_s", "visibility",
];
const TRACK_COLOURS = ["#4fc3f7", "#ffb74d", "#ba68c8", "#aed581", "#f06292", "#4db6ac", "#fff176", "#90a4ae"];

const S = {
  session: null, rec: null, skel: null, analysis: null, episodes: [],
  t: 0, t0: 0, t1: 1, playing: false, lastFrame: null, speed: 1,
  person: null, mark: null, selected: null, videoUrl: null,
};
const $ = (id) => document.getElementById(id);

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = "status" + (kind ? " " + kind : "");
}

async function api(method, url, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(url, opts);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.error || resp.status + " " + resp.statusText);
  return data;
}

// ---- loading -------------------------------------------------------------------------------------------
async function start() {
  try {
    S.session = await api("GET", "/api/session");
  } catch (e) {
    setStatus("cannot reach the review server: " + e.message, "error");
    return;
  }
  $("rater").textContent = S.session.rater;
  const sel = $("recording");
  for (const r of S.session.recordings) sel.add(new Option(r.name, r.id));
  S.session.patterns.forEach((p, i) => $("pattern").add(new Option(`${i + 1} ${p}`, p)));
  const wanted = new URLSearchParams(location.search).get("recording") || sessionStorage.getItem("recording");
  if (wanted && S.session.recordings.some((r) => r.id === wanted)) sel.value = wanted;
  sel.onchange = () => openRecording(sel.value);
  await openRecording(sel.value);
}

async function openRecording(id) {
  sessionStorage.setItem("recording", id);
  S.rec = S.session.recordings.find((r) => r.id === id);
  S.t0 = S.rec.t_start;
  S.t1 = Math.max(S.rec.t_end, S.rec.t_start + 1);
  S.t = Number(sessionStorage.getItem("t:" + id)) || S.t0;
  S.person = S.rec.tracks[0] || null;
  S.mark = null;
  S.selected = null;
  S.analysis = null;
  setStatus("loading…", "busy");
  try {
    const [skel, eps] = await Promise.all([
      api("GET", `/api/recordings/${id}/skeleton`),
      api("GET", `/api/episodes?recording=${id}`),
    ]);
    S.skel = skel;
    S.episodes = eps.episodes;
    setStatus(`${S.episodes.length} episodes loaded`);
  } catch (e) {
    setStatus("load failed: " + e.message, "error");
    return;
  }
  renderEpisodes();
  draw();
  // The system's analysis runs the gait stage on the server (a few seconds for long recordings).
  api("GET", `/api/recordings/${id}/analysis`)
    .then((a) => { if (S.rec && S.rec.id === id) { S.analysis = a; draw(); } })
    .catch((e) => setStatus("analysis failed: " + e.message, "error"));
}

// ---- time ----------------------------------------------------------------------------------------------
function frameStep() { return 1 / (S.rec ? S.rec.fps : 15); }
function seek(t) {
  S.t = Math.min(S.t1, Math.max(S.t0, t));
  sessionStorage.setItem("t:" + S.rec.id, String(S.t));
  syncVideo(true);
  draw();
}
function togglePlay() {
  S.playing = !S.playing;
  $("play").textContent = S.playing ? "❚❚ pause" : "▶ play";
  S.lastFrame = null;
  const v = $("video");
  if (S.videoUrl) { if (S.playing) { syncVideo(true); v.play().catch(() => {}); } else v.pause(); }
  if (S.playing) requestAnimationFrame(tick);
}
function tick(now) {
  if (!S.playing) return;
  if (S.lastFrame !== null) {
    const dt = ((now - S.lastFrame) / 1000) * S.speed;
    S.t = Math.min(S.t1, S.t + dt);
    if (S.t >= S.t1) togglePlay();
  }
  S.lastFrame = now;
  syncVideo(false);
  draw();
  if (S.playing) requestAnimationFrame(tick);
}
function setSpeed(v) {
  S.speed = v;
  $("speed").value = String(v);
  $("video").playbackRate = v;
}

// ---- video (local file only: an object URL, never uploaded) ---------------------------------------------
function syncVideo(force) {
  if (!S.videoUrl) return;
  const v = $("video");
  // `gaitwatch record` stamps samples with the video's media time (frame index / fps): the same clock
  const want = S.t + Number($("video-offset").value || 0);
  if (force || Math.abs(v.currentTime - want) > 0.25) v.currentTime = Math.max(0, want);
}

// ---- drawing -------------------------------------------------------------------------------------------
function sampleAt(track, t) {
  const ts = track.t;
  let lo = 0, hi = ts.length - 1;
  if (hi < 0 || t < ts[0] - 0.5 || t > ts[hi] + 0.5) return null;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (ts[mid] <= t) lo = mid; else hi = mid; }
  const i = Math.abs(ts[lo] - t) <= Math.abs(ts[hi] - t) ? lo : hi;
  return Math.abs(ts[i] - t) <= 0.5 ? track.kp[i] : null;
}

function drawSkeletons() {
  const c = $("skeleton"), g = c.getContext("2d");
  const v = $("video");
  let [x0, y0, x1, y1] = S.skel.bounds;
  if (S.videoUrl && v.videoWidth) { x0 = 0; y0 = 0; x1 = v.videoWidth; y1 = v.videoHeight; }
  else { const mx = 0.08 * (x1 - x0) + 10, my = 0.08 * (y1 - y0) + 10; x0 -= mx; x1 += mx; y0 -= my; y1 += my; }
  // one scale for x and y (people keep their proportions), the view at most half the window's height
  c.width = c.clientWidth || 800;
  const fit = Math.min(c.width / (x1 - x0), Math.max(200, 0.5 * window.innerHeight) / (y1 - y0));
  c.height = Math.round(fit * (y1 - y0));
  const ox = (c.width - fit * (x1 - x0)) / 2;
  x0 -= ox / fit;
  const sx = fit, sy = fit;
  g.clearRect(0, 0, c.width, c.height);
  if (!S.videoUrl) { g.fillStyle = "#1b1b1b"; g.fillRect(0, 0, c.width, c.height); }
  const tracks = S.rec.tracks;
  tracks.forEach((tid, k) => {
    const kp = sampleAt(S.skel.tracks[tid], S.t);
    if (!kp) return;
    const colour = TRACK_COLOURS[k % TRACK_COLOURS.length];
    const P = (j) => (kp[2 * j] === null ? null : [(kp[2 * j] - x0) * sx, (kp[2 * j + 1] - y0) * sy]);
    g.strokeStyle = colour;
    g.lineWidth = tid === S.person ? 4 : 2;
    for (const [a, b] of S.session.skeleton) {
      const pa = P(a), pb = P(b);
      if (!pa || !pb) continue;
      g.beginPath(); g.moveTo(pa[0], pa[1]); g.lineTo(pb[0], pb[1]); g.stroke();
    }
    const head = P(0) || P(11);
    if (head) {
      g.fillStyle = colour;
      g.font = (tid === S.person ? "bold " : "") + "14px sans-serif";
      g.fillText(`#${tid}` + (tid === S.person ? " ◀" : ""), head[0] + 6, head[1] - 8);
    }
  });
}

function lanes() { return S.rec.tracks; }
const AXIS = 18, LANE = 34;
function tToX(t, w) { return ((t - S.t0) / (S.t1 - S.t0)) * w; }
function xToT(x, w) { return S.t0 + (x / w) * (S.t1 - S.t0); }

function drawTimeline() {
  const c = $("timeline"), g = c.getContext("2d");
  c.width = c.clientWidth || 800;
  c.height = AXIS + LANE * lanes().length + 4;
  const w = c.width;
  g.clearRect(0, 0, w, c.height);
  g.font = "11px sans-serif";
  g.fillStyle = "#555";
  const span = S.t1 - S.t0, step = span > 300 ? 60 : span > 60 ? 10 : span > 20 ? 5 : 1;
  for (let t = Math.ceil(S.t0 / step) * step; t <= S.t1; t += step) {
    const x = tToX(t, w);
    g.fillRect(x, 0, 1, 5);
    g.fillText(`${Math.round(t)}s`, x + 2, 11);
  }
  lanes().forEach((tid, k) => {
    const y = AXIS + k * LANE;
    g.fillStyle = tid === S.person ? "#fff8e1" : k % 2 ? "#fafafa" : "#f0f0f0";
    g.fillRect(0, y, w, LANE - 2);
    // system windows: each window's last hop, coloured by the classifier's call (pale when not valid)
    if (S.analysis) {
      for (const win of S.analysis.windows) {
        if (String(win.track) !== tid) continue;
        const xa = tToX(win.t_end - 1, w), xb = tToX(win.t_end, w);
        g.fillStyle = win.valid ? SYSTEM_COLOURS[win.label] || "#e0e0e0" : "#eeeeee";
        g.fillRect(xa, y + 20, Math.max(1, xb - xa), 10);
      }
      // cadence trace (40-160 steps/min) over the system strip
      g.strokeStyle = "#37474f"; g.lineWidth = 1; g.beginPath();
      let pen = false;
      for (const win of S.analysis.windows) {
        if (String(win.track) !== tid) continue;
        if (!win.valid || win.cadence_spm === null) { pen = false; continue; }
        const x = tToX(win.t_end, w), yy = y + 30 - ((Math.min(160, Math.max(40, win.cadence_spm)) - 40) / 120) * 10;
        if (pen) g.lineTo(x, yy); else g.moveTo(x, yy);
        pen = true;
      }
      g.stroke();
      for (const a of S.analysis.alerts) {
        if (String(a.track) !== tid || a.phase !== "start") continue;
        const x = tToX(a.t_observed, w);
        g.fillStyle = "#b71c1c";
        g.beginPath(); g.moveTo(x, y + 19); g.lineTo(x - 5, y + 11); g.lineTo(x + 5, y + 11); g.fill();
        g.fillText(a.type, x + 6, y + 18);
      }
    }
    // episodes: the rater's own as thick bars, other raters' as thin lines
    for (const e of S.episodes) {
      if (e.subject !== tid) continue;
      const xa = tToX(e.t_start, w), xb = tToX(e.t_end, w);
      g.fillStyle = LABEL_COLOURS[e.label] || "#000";
      if (e.mine) g.fillRect(xa, y + 2, Math.max(2, xb - xa), 9);
      else g.fillRect(xa, y + 12, Math.max(2, xb - xa), 2);
      if (S.selected === e.id) { g.strokeStyle = "#000"; g.lineWidth = 2; g.strokeRect(xa, y + 1, xb - xa, 11); }
    }
    g.fillStyle = "#000";
    g.fillText(`#${tid}`, 3, y + 26);
  });
  if (S.mark !== null) {
    const x = tToX(S.mark, w);
    g.strokeStyle = "#1565c0"; g.setLineDash([4, 3]); g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(x, AXIS); g.lineTo(x, c.height); g.stroke(); g.setLineDash([]);
  }
  const x = tToX(S.t, w);
  g.fillStyle = "#d50000";
  g.fillRect(x - 1, 0, 2, c.height);
}

function drawMetrics() {
  const tbl = $("metrics");
  const rows = [];
  if (!S.analysis) rows.push(["", "analysing…"]);
  else {
    let best = null;
    for (const win of S.analysis.windows) {
      if (String(win.track) !== S.person || win.t_end < S.t - 1e-6 || win.t_start > S.t) continue;
      if (!best || Math.abs(win.t_end - S.t) < Math.abs(best.t_end - S.t)) best = win;
    }
    if (!best) rows.push(["", "no window for this person here"]);
    else {
      const f = best.features || {};
      const fmt = (v, d = 2) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d));
      rows.push(["window", `${fmt(best.t_start, 1)}–${fmt(best.t_end, 1)} s`]);
      rows.push(["state", best.state + (best.valid ? "" : " (not valid)")]);
      rows.push(["call", `${best.label} (p=${fmt(best.p_abnormal)})` + (best.pattern ? ` ${best.pattern}` : "")]);
      rows.push(["cadence", `${fmt(best.cadence_spm, 1)} steps/min`]);
      rows.push(["quality", fmt(best.quality)]);
      for (const k of KEY_FEATURES) if (k in f) rows.push([k, fmt(f[k], 3)]);
    }
  }
  tbl.innerHTML = "";
  for (const [k, v] of rows) { const tr = tbl.insertRow(); tr.insertCell().textContent = k; tr.insertCell().textContent = v; }
}

function draw() {
  if (!S.rec || !S.skel) return;
  $("time").textContent = `${S.t.toFixed(2)} s / ${S.t1.toFixed(1)} s`;
  $("person").textContent = S.person ? `#${S.person}` : "–";
  $("mark").textContent = S.mark === null ? "–" : `${S.mark.toFixed(2)} s`;
  drawSkeletons();
  drawTimeline();
  drawMetrics();
}

function renderEpisodes() {
  const body = $("episodes").tBodies[0];
  body.innerHTML = "";
  const eps = [...S.episodes].sort((a, b) => Number(a.subject) - Number(b.subject) || a.t_start - b.t_start);
  for (const e of eps) {
    const tr = body.insertRow();
    tr.dataset.id = e.id;
    tr.className = (e.mine ? "" : "other") + (S.selected === e.id ? " selected" : "");
    const cells = [`#${e.subject}`, e.t_start.toFixed(2), e.t_end.toFixed(2), e.label, e.pattern, e.rater, e.note];
    cells.forEach((v, i) => { const td = tr.insertCell(); td.textContent = v; if (i === 3) td.className = "label-" + e.label; });
    const td = tr.insertCell();
    if (e.mine) {
      const del = document.createElement("button");
      del.textContent = "delete";
      del.onclick = (ev) => { ev.stopPropagation(); deleteEpisode(e.id); };
      td.appendChild(del);
    }
    tr.onclick = () => { S.selected = e.id; S.person = e.subject; seek(e.t_start); renderEpisodes(); };
  }
  $("count").textContent = String(S.episodes.length);
}

// ---- labelling -----------------------------------------------------------------------------------------
function defaultStart() {
  // where this rater's previous episode for this person ended (before the cursor), else the person's first frame
  let start = S.skel.tracks[S.person].t[0];
  for (const e of S.episodes) {
    if (e.mine && e.subject === S.person && e.t_end <= S.t + 1e-6 && e.t_end > start) start = e.t_end;
  }
  return start;
}

async function addEpisode(label) {
  if (!S.person) return;
  const a = S.mark !== null ? S.mark : defaultStart();
  let [t0, t1] = a <= S.t ? [a, S.t] : [S.t, a];
  if (t1 - t0 < 0.05) { setStatus("episode too short: mark a start with [ or move the cursor", "error"); return; }
  const body = {
    recording: S.rec.id, subject: S.person, t_start: t0, t_end: t1, label,
    pattern: label === "abnormal" ? $("pattern").value : "", note: $("note").value,
  };
  setStatus("saving…", "busy");
  try {
    const res = await api("POST", "/api/episodes", body);
    S.episodes.push(res.episode);
    S.selected = res.episode.id;
    S.mark = null;
    $("note").value = "";
    setStatus(`saved ${new Date().toLocaleTimeString()}: ${label} #${S.person} ${t0.toFixed(1)}–${t1.toFixed(1)} s`);
  } catch (e) {
    setStatus("NOT saved: " + e.message, "error");
  }
  renderEpisodes();
  draw();
}

async function deleteEpisode(id) {
  const e = S.episodes.find((x) => x.id === id);
  if (!e || !e.mine) return;
  setStatus("saving…", "busy");
  try {
    await api("DELETE", `/api/episodes/${id}`);
    S.episodes = S.episodes.filter((x) => x !== e);
    if (S.selected === id) S.selected = null;
    setStatus(`saved ${new Date().toLocaleTimeString()}: deleted ${e.label} #${e.subject}`);
  } catch (err) {
    setStatus("NOT saved: " + err.message, "error");
  }
  renderEpisodes();
  draw();
}

function personEdge(last) {
  const ts = S.skel.tracks[S.person].t;
  seek(last ? ts[ts.length - 1] : ts[0]);
}

function cyclePerson(delta) {
  const ts = lanes();
  if (!ts.length) return;
  const i = Math.max(0, ts.indexOf(S.person));
  S.person = ts[(i + delta + ts.length) % ts.length];
  S.mark = null;
  draw();
}

document.addEventListener("keydown", (ev) => {
  if (!S.rec || !S.skel) return;
  const tag = (ev.target && ev.target.tagName) || "";
  if (tag === "INPUT" || tag === "TEXTAREA") { if (ev.key === "Escape" || ev.key === "Enter") ev.target.blur(); return; }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const k = ev.key;
  let handled = true;
  if (k === " ") togglePlay();
  else if (k === "ArrowRight") seek(S.t + (ev.shiftKey ? 1 : frameStep()));
  else if (k === "ArrowLeft") seek(S.t - (ev.shiftKey ? 1 : frameStep()));
  else if (k === "ArrowDown") cyclePerson(1);
  else if (k === "ArrowUp") cyclePerson(-1);
  else if (k === "Home") personEdge(false);
  else if (k === "End") personEdge(true);
  else if (k === "[") { S.mark = S.t; draw(); }
  else if (k === "Escape") { S.mark = null; draw(); }
  else if (k.toLowerCase() in LABEL_KEYS && k.length === 1) addEpisode(LABEL_KEYS[k.toLowerCase()]);
  else if (k >= "0" && k <= "9" && k.length === 1) {
    const i = Number(k);
    const opts = $("pattern").options;
    if (i < opts.length) $("pattern").selectedIndex = i;
  }
  else if (k === "Delete" || k === "Backspace") { if (S.selected) deleteEpisode(S.selected); }
  else if (k === "+" || k === "=") setSpeed(Math.min(8, S.speed * 2));
  else if (k === "-") setSpeed(Math.max(0.5, S.speed / 2));
  else handled = false;
  if (handled) {
    ev.preventDefault();
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  }
});

$("timeline").addEventListener("click", (ev) => {
  if (!S.rec) return;
  const c = $("timeline"), r = c.getBoundingClientRect();
  const x = ((ev.clientX - r.left) / r.width) * c.width, y = ((ev.clientY - r.top) / r.height) * c.height;
  const lane = Math.floor((y - AXIS) / LANE);
  if (lane >= 0 && lane < lanes().length) S.person = lanes()[lane];
  seek(xToT(x, c.width));
});
$("play").onclick = (ev) => { ev.currentTarget.blur(); togglePlay(); };
$("speed").onchange = (ev) => { setSpeed(Number(ev.target.value)); ev.target.blur(); };
$("pattern").onchange = (ev) => ev.target.blur();
$("video-file").onchange = (ev) => {
  const f = ev.target.files[0];
  if (S.videoUrl) URL.revokeObjectURL(S.videoUrl);
  S.videoUrl = f ? URL.createObjectURL(f) : null;
  const v = $("video");
  v.style.display = S.videoUrl ? "block" : "none";
  if (S.videoUrl) { v.src = S.videoUrl; v.playbackRate = S.speed; v.onloadedmetadata = () => { syncVideo(true); draw(); }; }
  else v.removeAttribute("src");
  ev.target.blur();
};
window.addEventListener("resize", draw);

start();
