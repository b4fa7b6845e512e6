// One storyboard's page (#/storyboards/<id>): polls GET /v1/storyboards/{id} once a
// second until it settles, with the overall progress, the stage ("making shot 2/3",
// "joining"), and a row per shot (status, progress, a link to its video's page). When
// it completes: the joined video, where the joins are, its length, size and cost, and
// a download. When a shot fails: the error, that shot marked, and "Retry shot", which
// may change the shot's prompt and model (POST …/shots/{n}/retry) and follows again.

import { api, ApiError, followStoryboard } from "./api.js";
import { $, fill, bytes, creditsLabel, el, elapsed, money, relativeTime, secondsExact, STATUS_LABELS } from "./format.js";
import { alert, explainApiError, explainStoryboard } from "./messages.js";
import { fitShot, shotControls, storyboardSeconds, takeSubmitted } from "./storyboard.js";

const board = {
  id: null,
  sb: null,
  gen: 0,
  follow: null, // AbortController of the poll
  following: false, // a poll is running
  rows: [], // per shot: {row, badge, fill, bar, pct, link, facts, retryButton, retrySlot}
  retrying: new Set(), // shot numbers whose retry form is open
  videoPath: null,
  onFinal: () => {},
};

const RUNNING = new Set(["queued", "in_progress"]);

/** Nothing more will change without the user: done, canceled, or failed with no shot running. */
function settled(sb) {
  if (sb.status === "completed" || sb.status === "canceled") return true;
  return sb.status === "failed" && !sb.shots.some((s) => RUNNING.has(s.status));
}

const pathOf = (url) => String(url || "").split("?")[0];

function setProgress(value) {
  const v = Math.max(0, Math.min(100, Math.round(Number(value) || 0)));
  const bar = $("sbp-progress");
  if (bar.getAttribute("aria-valuenow") !== String(v)) bar.setAttribute("aria-valuenow", String(v));
  $("sbp-progress-fill").style.setProperty("--p", `${v}%`);
  $("sbp-pct").textContent = `${v}%`;
}

function stageText(sb) {
  const n = sb.shots.length;
  const done = sb.shots.filter((s) => s.status === "completed").length;
  switch (sb.status) {
    case "queued":
      return "Queued — waiting for a worker";
    case "in_progress":
      if (sb.stage === "joining") return `Joining ${n} shots into one video…`;
      if (sb.continue_from_previous) return `Making shot ${Math.min(n, done + 1)}/${n}…`;
      return `Making shots · ${done}/${n} done`;
    case "completed":
      return n > 1 ? `Done — ${n} shots joined into one video` : "Done — your video is ready";
    case "failed":
      return sb.error?.shot ? `Failed at shot ${sb.error.shot}` : "Failed";
    case "canceled":
      return "Canceled";
    default:
      return sb.status;
  }
}

// ───────────────────────────── the shots ─────────────────────────────

/** Whether shot `s` may be made again: a failed storyboard, and a shot that failed,
 * was canceled or never started because of the failure. */
function retryable(sb, s) {
  return sb.status === "failed" && (s.status === "failed" || s.status === "canceled" || sb.error?.shot === s.index);
}

function shotRow(s) {
  const badge = el("span", { class: "badge" });
  const fill = el("div", { class: "progress-fill" });
  const bar = el("div", { class: "progress slim", role: "progressbar", "aria-label": `Shot ${s.index} progress`, "aria-valuemin": "0", "aria-valuemax": "100" }, fill);
  const pct = el("span", { class: "pct small" });
  const link = el("a", { class: "sbp-shot-link small", hidden: true }, "Video page →");
  const prompt = el("p", { class: "sbp-shot-prompt" });
  const facts = el("span", { class: "muted small sbp-shot-facts" });
  const tried = el("span", { class: "muted small sbp-shot-tried" });
  const retryButton = el("button", { type: "button", class: "btn small sbp-retry", hidden: true }, `Retry shot ${s.index}`);
  const retrySlot = el("div", { class: "sbp-retry-slot" });
  retryButton.addEventListener("click", () => openRetry(s.index));
  const row = el(
    "li",
    { class: "sbp-shot", dataset: { shot: s.index } },
    el("span", { class: "step shot-no" }, String(s.index)),
    el(
      "div",
      { class: "sbp-shot-main" },
      el("div", { class: "sbp-shot-top" }, badge, facts),
      prompt,
      el("div", { class: "sbp-shot-progress" }, bar, pct, link),
      tried,
      retryButton,
      retrySlot,
    ),
  );
  return { row, badge, fill, bar, pct, link, prompt, facts, tried, retryButton, retrySlot };
}

function renderShot(sb, s, r) {
  r.row.dataset.status = s.status;
  r.row.classList.toggle("failed-shot", sb.status === "failed" && sb.error?.shot === s.index);
  r.badge.className = `badge ${s.status}`;
  r.badge.textContent = STATUS_LABELS[s.status] || s.status;
  const progress = s.status === "completed" ? 100 : Math.max(0, Math.min(100, s.progress || 0));
  r.fill.style.setProperty("--p", `${progress}%`);
  r.bar.setAttribute("aria-valuenow", String(progress));
  r.bar.classList.toggle("done", s.status === "completed");
  r.bar.classList.toggle("bad", s.status === "failed" || s.status === "canceled");
  r.bar.classList.toggle("live", RUNNING.has(s.status));
  r.pct.textContent = `${progress}%`;
  if (r.prompt.textContent !== s.prompt) r.prompt.textContent = s.prompt;
  const model = s.delivered_by && s.delivered_by !== s.model ? `${s.model} → ${s.delivered_by}` : s.model;
  r.facts.textContent = [
    model,
    s.duration_seconds ? `${s.duration_seconds} s` : null,
    s.resolution,
    s.aspect_ratio,
    s.cost && s.status === "completed" ? creditsLabel(s.cost.credits) : null,
  ].filter(Boolean).join(" · ");
  if (s.video_id) {
    r.link.href = `#/videos/${encodeURIComponent(s.video_id)}`;
    r.link.hidden = false;
  } else {
    r.link.removeAttribute("href");
    r.link.hidden = true;
  }
  const tried = s.tried || [];
  r.tried.replaceChildren(
    ...(tried.length
      ? [
          `Tried before: `,
          ...tried.flatMap((id, i) => [i ? ", " : "", el("a", { href: `#/videos/${encodeURIComponent(id)}` }, id)]),
        ]
      : []),
  );
  r.tried.hidden = !tried.length;
  const canRetry = retryable(sb, s);
  if (!canRetry) {
    board.retrying.delete(s.index);
    r.retrySlot.replaceChildren();
  }
  r.retryButton.hidden = !canRetry || board.retrying.has(s.index);
}

function renderShots(sb) {
  if (board.rows.length !== sb.shots.length) {
    board.rows = sb.shots.map(shotRow);
    board.retrying.clear();
    $("sbp-shots").replaceChildren(...board.rows.map((r) => r.row));
  }
  sb.shots.forEach((s, i) => renderShot(sb, s, board.rows[i]));
}

// ───────────────────────────── retry ─────────────────────────────

function openRetry(n) {
  const sb = board.sb;
  const s = sb?.shots[n - 1];
  const r = board.rows[n - 1];
  if (!s || !r) return;
  board.retrying.add(n);
  r.retryButton.hidden = true;
  const label = `Shot ${n}`;
  const draft = {
    prompt: s.prompt,
    model: s.model,
    duration: s.duration_seconds,
    resolution: s.resolution,
    aspect: s.aspect_ratio,
  };
  fitShot(draft);
  const asked = { ...draft }; // the shot as it stands, with the model's defaults filled in
  const fromFrame = sb.continue_from_previous && n > 1;
  const prompt = el("textarea", { class: "sbp-retry-prompt", rows: 3, maxlength: 4000, "aria-label": `${label} prompt` });
  prompt.value = s.prompt;
  prompt.addEventListener("input", () => { draft.prompt = prompt.value; });
  const controlsSlot = el("div", {});
  const drawControls = () => {
    const role = controlsSlot.contains(document.activeElement) ? document.activeElement.dataset.role : null;
    controlsSlot.replaceChildren(shotControls(draft, { label, fromFrame, onChange: drawControls }));
    if (role) controlsSlot.querySelector(`[data-role="${role}"]`)?.focus();
  };
  drawControls();
  const messages = el("div", { class: "sbp-retry-messages" });
  const send = el("button", { type: "submit", class: "btn primary small sbp-retry-send" }, `Retry shot ${n}`);
  const close = el("button", { type: "button", class: "btn small ghost" }, "Cancel");
  const form = el(
    "form",
    { class: "sbp-retry-form", novalidate: true },
    el("p", { class: "muted small" }, "Change what made it fail, then make this shot again; the other shots are kept."),
    prompt,
    controlsSlot,
    messages,
    el("div", { class: "result-actions" }, send, close),
  );
  close.addEventListener("click", () => {
    board.retrying.delete(n);
    r.retrySlot.replaceChildren();
    r.retryButton.hidden = !retryable(board.sb, board.sb.shots[n - 1]);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    messages.replaceChildren();
    if (!prompt.value.trim()) {
      messages.append(alert("error", "Describe the shot", "The prompt is empty."));
      prompt.focus();
      return;
    }
    const change = {};
    if (prompt.value.trim() !== s.prompt) change.prompt = prompt.value.trim();
    if (draft.model !== s.model) change.model = draft.model;
    if (draft.model !== s.model || draft.duration !== asked.duration) change.duration_seconds = draft.duration;
    if (draft.model !== s.model || draft.resolution !== asked.resolution) change.resolution = draft.resolution;
    if (draft.model !== s.model || draft.aspect !== asked.aspect) change.aspect_ratio = draft.aspect;
    send.disabled = true;
    send.textContent = "Retrying…";
    const gen = board.gen;
    try {
      const answer = await api.retryShot(sb.id, n, change);
      if (gen !== board.gen) return;
      board.retrying.delete(n);
      r.retrySlot.replaceChildren();
      render(answer);
      follow();
    } catch (err) {
      messages.replaceChildren(explainApiError(err, { subject: "this shot" }));
      send.disabled = false;
      send.textContent = `Retry shot ${n}`;
    }
  });
  r.retrySlot.replaceChildren(form);
  prompt.focus();
}

// ───────────────────────────── the result ─────────────────────────────

function seekTo(at) {
  const video = $("sbp-video");
  video.currentTime = at;
  video.play().catch(() => {});
}

function renderResult(sb) {
  const r = sb.result;
  const box = $("sbp-result");
  if (sb.status !== "completed" || !r || !r.url) {
    box.hidden = true;
    return;
  }
  const video = $("sbp-video");
  if (board.videoPath !== pathOf(r.url)) {
    board.videoPath = pathOf(r.url);
    if (r.thumbnail_url) video.setAttribute("poster", r.thumbnail_url);
    else video.removeAttribute("poster");
    if (r.width && r.height) video.style.aspectRatio = `${r.width} / ${r.height}`;
    video.src = r.url;
  }
  const length = Number(r.duration_seconds) || storyboardSeconds(sb);
  const joins = (r.joins_at || []).map(Number);
  const bounds = [0, ...joins, length];
  $("sbp-timeline").replaceChildren(
    ...sb.shots.map((s, i) => {
      const start = bounds[i] ?? 0;
      const end = bounds[i + 1] ?? length;
      const part = el(
        "button",
        { type: "button", class: "sbp-part", dataset: { shot: s.index }, title: `Shot ${s.index}: ${secondsExact(start)} – ${secondsExact(end)}` },
        String(s.index),
      );
      part.style.flexGrow = String(Math.max(0.001, end - start));
      part.addEventListener("click", () => seekTo(start));
      return part;
    }),
  );
  $("sbp-joins").replaceChildren(
    ...(joins.length
      ? joins.map((at, i) => {
          const b = el("button", { type: "button", class: "link-btn sbp-join", dataset: { at } }, secondsExact(at));
          b.title = `Shot ${i + 2} starts here`;
          b.addEventListener("click", () => seekTo(at));
          return el("li", {}, b);
        })
      : [el("li", { class: "muted small" }, "none: one shot")]),
  );
  $("sbp-length").textContent = secondsExact(r.duration_seconds);
  fill($("sbp-size"),
    r.width ? `${r.width}×${r.height}` : "—",
    r.bytes ? el("span", { class: "sub" }, bytes(r.bytes)) : null,
  );
  fill($("sbp-cost"),
    sb.cost ? creditsLabel(sb.cost.credits) : "—",
    sb.cost?.money ? el("span", { class: "sub" }, money(sb.cost.money)) : null,
  );
  fill($("sbp-shot-count"),
    String(sb.shots.length),
    el("span", { class: "sub" }, `${sb.units_consumed} s billed`),
  );
  const dl = $("sbp-download");
  dl.href = r.url;
  dl.setAttribute("download", `${sb.id}.mp4`);
  box.hidden = false;
}

/** A failed or canceled storyboard has no video: say why, and what to do. */
function renderNoPlayer(sb) {
  const box = $("sbp-noplayer");
  box.hidden = sb.status !== "failed" && sb.status !== "canceled";
  if (box.hidden) return;
  $("sbp-noplayer-badge").className = `badge ${sb.status}`;
  $("sbp-noplayer-badge").textContent = STATUS_LABELS[sb.status] || sb.status;
  const shot = sb.error?.shot;
  $("sbp-noplayer-text").textContent =
    sb.status === "canceled"
      ? "This storyboard was canceled, so there is no video."
      : sb.error?.code === "join_failed"
        ? "The shots were made but could not be joined into one video."
        : shot
          ? `No video yet: shot ${shot} failed. Retry it from the list of shots; the storyboard carries on from there.`
          : "No video: the storyboard failed.";
}

function render(sb) {
  board.sb = sb;
  $("sbp-id").textContent = sb.id;
  $("sbp-badge").className = `badge ${sb.status}`;
  $("sbp-badge").textContent = STATUS_LABELS[sb.status] || sb.status;
  const created = sb.created_at ? new Date(sb.created_at * 1000) : null;
  $("sbp-when").textContent = [
    created ? `created ${relativeTime(created)}` : null,
    sb.completed_at && sb.created_at ? `took ${elapsed(sb.completed_at - sb.created_at)}` : null,
  ].filter(Boolean).join(" · ");
  const n = sb.shots.length;
  $("sbp-options").textContent = [
    `${n} ${n === 1 ? "shot" : "shots"}`,
    sb.continue_from_previous ? "each from the previous one's last frame" : "made side by side",
    n > 1 ? (sb.crossfade_seconds ? `${secondsExact(sb.crossfade_seconds)} crossfades` : "cuts") : null,
  ].filter(Boolean).join(" · ");
  setProgress(sb.progress);
  const bar = $("sbp-progress");
  bar.classList.toggle("done", sb.status === "completed");
  bar.classList.toggle("bad", sb.status === "failed" || sb.status === "canceled");
  bar.classList.toggle("live", RUNNING.has(sb.status));
  $("sbp-stage").textContent = stageText(sb);
  $("sbp-waiting").hidden = !RUNNING.has(sb.status);
  $("sbp-waiting-text").textContent = sb.stage === "joining" ? "Joining the shots" : stageText(sb).replace(/…$/, "");
  $("sbp-cancel").hidden = !RUNNING.has(sb.status);
  renderNoPlayer(sb);
  const note = explainStoryboard(sb);
  $("sbp-messages").replaceChildren(...(note ? [note] : []));
  renderShots(sb);
  renderResult(sb);
  $("sbp-body").hidden = false;
}

function follow() {
  board.follow?.abort();
  const ctrl = new AbortController();
  board.follow = ctrl;
  const gen = board.gen;
  board.following = true;
  followStoryboard(board.id, (sb) => { if (!ctrl.signal.aborted && gen === board.gen) render(sb); }, ctrl.signal, settled)
    .finally(() => { if (board.follow === ctrl) board.following = false; })
    .then((final) => {
      if (ctrl.signal.aborted || gen !== board.gen) return;
      render(final);
      board.onFinal(final);
    })
    .catch((err) => {
      if (ctrl.signal.aborted || gen !== board.gen) return;
      $("sbp-messages").replaceChildren(explainApiError(err));
    });
}

function reset(id) {
  board.follow?.abort();
  board.follow = null;
  board.gen += 1;
  board.id = id;
  board.sb = null;
  board.rows = [];
  board.retrying.clear();
  board.videoPath = null;
  const video = $("sbp-video");
  video.pause();
  video.removeAttribute("src");
  video.removeAttribute("poster");
  video.load();
  $("sbp-id").textContent = id;
  $("sbp-badge").textContent = "";
  $("sbp-badge").className = "badge";
  $("sbp-when").textContent = "";
  $("sbp-options").textContent = "";
  $("sbp-messages").replaceChildren();
  $("sbp-shots").replaceChildren();
  $("sbp-result").hidden = true;
  $("sbp-body").hidden = true;
  setProgress(0);
}

/** Stop following when the page is left (the router calls this). */
export function leaveBoard() {
  board.follow?.abort();
  board.follow = null;
  board.gen += 1;
  board.id = null;
  if ($("sbp-video").getAttribute("src")) $("sbp-video").pause();
}

/** Show storyboard `id` and follow it until it settles. */
export async function openBoard(id) {
  if (board.id === id && board.sb) return;
  reset(id);
  const gen = board.gen;
  const known = takeSubmitted(id);
  try {
    const sb = known || (await api.storyboard(id));
    if (gen !== board.gen) return;
    render(sb);
    if (!settled(sb)) follow();
  } catch (err) {
    if (gen !== board.gen) return;
    $("sbp-messages").replaceChildren(
      err instanceof ApiError && err.status === 404
        ? alert("error", "No such storyboard", `No storyboard ${id} on this key's account.`)
        : explainApiError(err),
    );
  }
}

async function onCancel() {
  if (!board.sb) return;
  const button = $("sbp-cancel");
  button.disabled = true;
  try {
    render(await api.cancelStoryboard(board.sb.id));
    if (!board.following) follow();
  } catch (err) {
    $("sbp-messages").replaceChildren(explainApiError(err));
  } finally {
    button.disabled = false;
  }
}

export function initBoard({ onFinal }) {
  board.onFinal = onFinal;
  $("sbp-cancel").addEventListener("click", onCancel);
}
