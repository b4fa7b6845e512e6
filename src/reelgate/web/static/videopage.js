// One video's page (#/videos/<id>, opened from the gallery): the player with its
// poster, the request's parameters, every attempt, the cost, and downloads of the
// MP4, its poster and its sprite sheet. The gallery's filters ride along in the
// address, so the back link returns to the same list.

import { api, ApiError, FINAL } from "./api.js";
import { $, fill, bytes, creditsLabel, el, elapsed, money, relativeTime, seconds, STATUS_LABELS } from "./format.js";
import { galleryFilters, galleryQuery, jobSeconds } from "./gallery.js";
import { alert, explainApiError, explainJob } from "./messages.js";

const page = { gen: 0 };

// What a download is called, as the Python SDK and `reelgate download` name the files.
const DOWNLOADS = [
  ["video", "url", ".mp4"],
  ["thumbnail", "thumbnail_url", ".thumbnail.webp"],
  ["spritesheet", "spritesheet_url", ".spritesheet.jpg"],
];

function resetPlayer() {
  const video = $("vp-video");
  video.pause();
  video.removeAttribute("src");
  video.removeAttribute("poster");
  video.load();
}

/** Stop the player when the page is left (the router calls this). */
export function leaveVideo() {
  page.gen += 1;
  if ($("vp-video").getAttribute("src")) $("vp-video").pause();
}

function param(name, label, value) {
  if (value === null || value === undefined || value === "") return null;
  return el("div", { dataset: { param: name } }, el("dt", {}, label), el("dd", {}, value));
}

function renderParams(job) {
  const p = job.params || {};
  const fellBack = job.delivered_by && job.delivered_by !== job.model;
  $("vp-params").replaceChildren(
    ...[
      param("prompt", "Prompt", el("span", { class: "vp-prompt" }, job.prompt)),
      param("model", "Model", el("code", {}, job.model)),
      param("delivered_by", "Delivered by", job.delivered_by
        ? el("code", { class: fellBack ? "fell-back" : "" }, job.delivered_by)
        : el("span", { class: "muted" }, "—")),
      job.fallback?.length ? param("fallback", "Fallbacks", job.fallback.join(" → ")) : null,
      param("duration_seconds", "Duration", p.duration_seconds !== undefined ? `${p.duration_seconds} s` : null),
      param("resolution", "Resolution", p.resolution),
      param("aspect_ratio", "Aspect ratio", p.aspect_ratio),
      param("seed", "Seed", p.seed ?? el("span", { class: "muted" }, "random")),
      param("negative_prompt", "Negative prompt", p.negative_prompt),
      param("image", "Start image", p.image_url || (p.image ? "uploaded" : null)),
    ].filter(Boolean),
  );
}

/** An attempt's outcome drawn like the job status it resembles. */
function outcomeClass(outcome) {
  if (outcome === "completed" || outcome === "canceled") return outcome;
  if (outcome === "running" || outcome === "submitting") return "in_progress";
  return outcome ? "failed" : "";
}

function renderAttempts(job) {
  const attempts = job.attempts || [];
  $("vp-attempts").replaceChildren(
    ...(attempts.length
      ? attempts.map((a, i) => {
          const took = a.started_at && a.ended_at ? elapsed(a.ended_at - a.started_at) : null;
          const route = [a.provider, a.route].filter(Boolean).filter((v, k, all) => all.indexOf(v) === k).join(" / ");
          return el(
            "li",
            { dataset: { model: a.model, outcome: a.outcome || "" } },
            el("span", { class: "vp-attempt-no" }, String(i + 1)),
            el("code", { class: "vp-attempt-model" }, a.model),
            el("span", { class: `badge ${outcomeClass(a.outcome)}` }, a.outcome || "—"),
            a.error?.code ? el("code", { class: "vp-attempt-error", title: a.error.message || "" }, a.error.code) : null,
            el("span", { class: "muted small" }, [route, took].filter(Boolean).join(" · ")),
            a.error?.message ? el("p", { class: "vp-attempt-message muted small" }, a.error.message) : null,
          );
        })
      : [el("li", { class: "muted small vp-attempt-none" }, "Not tried yet: the job waits for a worker.")]),
  );
}

function renderFacts(job) {
  const r = job.result || {};
  fill($("vp-cost"),
    job.cost ? creditsLabel(job.cost.credits) : FINAL.has(job.status) ? "—" : "not yet billed",
    job.cost?.money ? el("span", { class: "sub" }, money(job.cost.money)) : null,
  );
  $("vp-duration").textContent = seconds(jobSeconds(job));
  fill($("vp-size"),
    r.width ? `${r.width}×${r.height}` : job.size || "—",
    r.bytes ? el("span", { class: "sub" }, bytes(r.bytes)) : null,
  );
}

function renderDownloads(job) {
  const r = job.result || {};
  for (const [variant, field, ending] of DOWNLOADS) {
    const link = $(`vp-dl-${variant}`);
    const url = r[field];
    link.hidden = !url;
    if (url) {
      link.href = url;
      link.setAttribute("download", `${job.id}${ending}`);
    } else {
      link.removeAttribute("href");
    }
  }
  $("vp-studio").href = `#/jobs/${encodeURIComponent(job.id)}`;
  $("vp-studio").textContent = FINAL.has(job.status) ? "Open in Studio" : "Follow live in Studio";
}

function renderPlayer(job) {
  const r = job.result || {};
  const video = $("vp-video");
  const playable = job.status === "completed" && r.url;
  $("vp-player").hidden = !playable;
  $("vp-noplayer").hidden = Boolean(playable);
  if (playable) {
    if (r.thumbnail_url) video.setAttribute("poster", r.thumbnail_url);
    else video.removeAttribute("poster");
    video.src = r.url;
    const [w, h] = [r.width, r.height];
    if (w && h) video.style.aspectRatio = `${w} / ${h}`;
    return;
  }
  $("vp-noplayer-badge").className = `badge ${job.status}`;
  $("vp-noplayer-badge").textContent = STATUS_LABELS[job.status] || job.status;
  $("vp-noplayer-text").textContent =
    job.status === "completed"
      ? "This video was deleted by the retention period; its details remain."
      : FINAL.has(job.status)
        ? "There is no video for this job."
        : `Still ${job.status === "queued" ? "waiting for a worker" : `rendering (${job.progress}%)`}: follow it live in the Studio.`;
}

function render(job) {
  $("vp-id").textContent = job.id;
  $("vp-badge").className = `badge ${job.status}`;
  $("vp-badge").textContent = STATUS_LABELS[job.status] || job.status;
  const created = job.created_at ? new Date(job.created_at * 1000) : null;
  $("vp-when").textContent = [
    created ? `created ${relativeTime(created)}` : null,
    job.completed_at && job.created_at ? `took ${elapsed(job.completed_at - job.created_at)}` : null,
  ].filter(Boolean).join(" · ");
  $("vp-when").title = created ? created.toISOString() : "";
  const note = explainJob(job);
  $("vp-messages").replaceChildren(...(note ? [note] : []));
  renderPlayer(job);
  renderFacts(job);
  renderParams(job);
  renderAttempts(job);
  renderDownloads(job);
  $("vp-body").hidden = false;
}

/** Show video `id`; `params` is the address's query (the gallery filters to go back to). */
export async function openVideo(id, params) {
  const gen = ++page.gen;
  $("vp-back").href = `#/gallery${galleryQuery(galleryFilters(params))}`;
  $("vp-id").textContent = id;
  $("vp-badge").textContent = "";
  $("vp-badge").className = "badge";
  $("vp-when").textContent = "";
  $("vp-messages").replaceChildren();
  $("vp-body").hidden = true;
  resetPlayer();
  try {
    const job = await api.job(id);
    if (gen === page.gen) render(job);
  } catch (err) {
    if (gen !== page.gen) return;
    $("vp-messages").replaceChildren(
      err instanceof ApiError && err.status === 404
        ? alert("error", "No such video", `No video job ${id} on this key's account.`)
        : explainApiError(err),
    );
  }
}
