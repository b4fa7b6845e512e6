// The studio view: compose a request from GET /v1/models (controls built from each
// model's allowedParams), submit it, follow the job live, play the result. The model list,
// its search and the chosen model's own controls (audio, a synced model's provider
// parameters) are modelpicker.js's; this form follows each model it chooses.

import { api, ApiError, FINAL, followJob } from "./api.js";
import {
  $, fill, bytes, creditsLabel, el, elapsed, fromMillicredits, millicredits, money, seconds, times,
  STATUS_LABELS,
} from "./format.js";
import { alert, explainApiError, explainJob } from "./messages.js";
import { audioChoice, catalog, currentModel, initModelPicker, perSecond, providerParams } from "./modelpicker.js";

// other modules (app.js, storyboard.js) import these from here
export { catalog, currentModelId, loadModels, notOffered, perSecond, selectModel } from "./modelpicker.js";

const EXAMPLE_PROMPT =
  "A vibrant tropical coral reef in crystal-clear turquoise water, colorful fish darting " +
  "between coral, soft golden sunlight streaming down, slow cinematic dolly-in, rich " +
  "saturated colors.";

const state = {
  fallback: [], // model ids, in the order picked
  image: null, // data: URI of the chosen start image
  jobId: null, // the job shown in the output panel
  follow: null, // AbortController of the live follow
  tick: null, // elapsed-time timer
  onFinal: () => {},
};

// ───────────────────────────── the model's parameters and price ─────────────────────────────

/** Durations the model offers at this resolution (the only ones the select shows). */
export function durationsFor(model, resolution) {
  const a = model.allowedParams;
  const base = a.duration_seconds || [];
  const byRes = (a.duration_seconds_by_resolution || {})[resolution];
  const max = model.max_duration_seconds || Infinity;
  return base.filter((d) => (!byRes || byRes.includes(d)) && d <= max);
}

/** Credits per second at this resolution (an exact decimal string). */
export function priceFor(model, resolution) {
  const byRes = model.price.by_resolution || {};
  return byRes[resolution] || model.price.credits_per_second;
}

/** Money per second at this resolution (`{amount, currency}`), or null when unpriced. */
export function moneyPerSecond(model, resolution) {
  const amount = (model.price.money_by_resolution || {})[resolution] || model.price.money_per_second?.amount;
  const currency = model.price.money_per_second?.currency;
  return amount && currency ? { amount, currency } : null;
}

/** Fill a <select> with `values`, keeping `chosen` when it is one of them. */
export function fillSelect(select, values, chosen, label = (v) => String(v)) {
  const keep = values.map(String).includes(String(chosen)) ? String(chosen) : String(values[0] ?? "");
  select.replaceChildren(...values.map((v) => el("option", { value: v }, label(v))));
  select.value = keep;
  select.disabled = values.length <= 1;
}

/** The form follows the model the picker chose: its options, fields, fallbacks and price. */
function onModelChosen(m, changed) {
  const a = m.allowedParams;
  const d = m.defaults || {};
  fillSelect($("resolution"), a.resolution, changed ? d.resolution : $("resolution").value);
  fillSelect($("aspect"), a.aspect_ratio, changed ? d.aspect_ratio : $("aspect").value);
  refreshDurations(changed ? d.duration_seconds : Number($("duration").value));
  $("field-negative").hidden = !a.negative_prompt;
  $("field-seed").hidden = !a.seed;
  $("field-image").hidden = !a.image_input;
  state.fallback = state.fallback.filter((f) => f !== m.id);
  refreshDependents();
}

function refreshDurations(preferred) {
  const m = currentModel();
  const values = durationsFor(m, $("resolution").value);
  fillSelect($("duration"), values, preferred, (v) => `${v} s`);
}

/** The request's parameters as the form stands now. */
function currentParams() {
  const m = currentModel();
  const a = m.allowedParams;
  const seed = $("seed").value.trim();
  return {
    duration: Number($("duration").value),
    resolution: $("resolution").value,
    aspect: $("aspect").value,
    image: a.image_input ? state.image : null,
    negative: a.negative_prompt ? $("negative-prompt").value.trim() : "",
    seed: a.seed && seed !== "" ? Number(seed) : null,
  };
}

/** Why model `f` cannot be a fallback for these parameters (null: it can). */
function fallbackProblem(f, p) {
  if (f.usable === false) return f.not_usable_reason || "not usable here";
  const a = f.allowedParams;
  if (!a.resolution.includes(p.resolution)) return `no ${p.resolution}`;
  if (!a.aspect_ratio.includes(p.aspect)) return `no ${p.aspect}`;
  if (!durationsFor(f, p.resolution).includes(p.duration)) return `no ${p.duration} s at ${p.resolution}`;
  if (p.image && !a.image_input) return "no start image";
  if (p.negative && !a.negative_prompt) return "no negative prompt";
  if (p.seed !== null && !a.seed) return "no seed";
  return null;
}

function renderFallbacks() {
  const m = currentModel();
  const { models, byId } = catalog();
  const p = currentParams();
  const others = models.filter((f) => f.id !== m.id && f.usable !== false);
  state.fallback = state.fallback.filter((id) => !fallbackProblem(byId.get(id), p));
  const chips = others.map((f) => {
    const problem = fallbackProblem(f, p);
    const order = state.fallback.indexOf(f.id);
    const input = el("input", { type: "checkbox", value: f.id, disabled: Boolean(problem), checked: order >= 0 });
    input.addEventListener("change", () => {
      state.fallback = input.checked ? [...state.fallback, f.id] : state.fallback.filter((x) => x !== f.id);
      renderFallbacks();
    });
    return el(
      "label",
      { class: `chip${problem ? " disabled" : ""}${order >= 0 ? " on" : ""}`, title: problem ? `Cannot take this request: ${problem}` : f.strengths },
      input,
      order >= 0 ? el("span", { class: "chip-order" }, String(order + 1)) : null,
      el("span", {}, f.id),
      problem ? el("span", { class: "chip-why" }, problem) : null,
    );
  });
  const defaults = (m.fallback || []).filter((id) => id !== m.id);
  $("fallback-help").textContent =
    "If the model is out of quota upstream, the job moves on to these, in the order you pick them." +
    (defaults.length ? ` With none picked, the gateway's default applies: ${defaults.join(" → ")}.` : "");
  $("fallback-list").replaceChildren(...(chips.length ? chips : [el("span", { class: "muted small" }, "No other usable model.")]));
}

/** A synced model's price for the inputs chosen, where audio or its own inputs move it
 * (`synced.price_by_inputs`): millicredits per second, null when no price is known for
 * that combination (the gateway refuses it), undefined when nothing moves its price. */
export function priceForInputs(model, resolution, inputs) {
  const combos = model.synced?.price_by_inputs || [];
  if (!combos.length) return undefined;
  const base = combos[0].when;
  const state = Object.fromEntries(Object.keys(base).map((k) => [k, inputs[k] ?? base[k]]));
  const same = (when) => Object.keys(state).every((k) => when[k] === state[k]);
  const found = combos.find((c) => same(c.when));
  if (!found) return null;
  return (found.by_resolution || {})[resolution] ?? found.millicredits_per_second;
}

function renderEstimate() {
  const m = currentModel();
  const p = currentParams();
  const audio = audioChoice();
  const inputs = { ...providerParams(), ...(audio === null ? {} : { audio }) };
  const moved = priceForInputs(m, p.resolution, inputs);
  if (moved === null) {
    fill($("estimate"), el("span", { class: "muted" },
      "No known price for these inputs: the gateway will refuse them (see the model's price_by_inputs)."));
    $("settings-hint").textContent = `${m.id}: ${p.resolution} · ${p.aspect}`;
    return;
  }
  const rate = moved ?? millicredits(priceFor(m, p.resolution));
  const total = fromMillicredits(rate * p.duration);
  // the money figure is the list price's; a price moved by the inputs shows credits only
  const perSec = moved === undefined ? moneyPerSecond(m, p.resolution) : null;
  fill($("estimate"),
    el("span", { class: "muted" }, "Estimated cost "),
    el("strong", {}, creditsLabel(total)),
    perSec ? el("span", { class: "money", id: "estimate-money" }, ` (${money({ amount: times(perSec.amount, p.duration), currency: perSec.currency })})`) : null,
    el("span", { class: "muted" }, ` · ${p.duration} s × ${perSecond(fromMillicredits(rate))}`),
  );
  const size = `${p.resolution} · ${p.aspect}`;
  $("settings-hint").textContent = `${m.id}: ${size}`;
}

function refreshDependents() {
  if (!currentModel()) return;
  renderFallbacks();
  renderEstimate();
}

// ───────────────────────────── image input ─────────────────────────────

function readAsDataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function onImageChosen() {
  const file = $("image").files[0];
  if (!file) return clearImage();
  state.image = await readAsDataUri(file);
  $("image-preview").src = state.image;
  $("image-preview").hidden = false;
  $("image-clear").hidden = false;
  refreshDependents();
}

function clearImage() {
  state.image = null;
  $("image").value = "";
  $("image-preview").hidden = true;
  $("image-preview").removeAttribute("src");
  $("image-clear").hidden = true;
  refreshDependents();
}

// ───────────────────────────── submit ─────────────────────────────

function buildRequest() {
  const p = currentParams();
  const body = {
    model: currentModel().id,
    prompt: $("prompt").value.trim(),
    duration_seconds: p.duration,
    resolution: p.resolution,
    aspect_ratio: p.aspect,
  };
  if (state.fallback.length) body.fallback = [...state.fallback];
  if (p.image) body.image = p.image;
  if (p.negative) body.negative_prompt = p.negative;
  if (p.seed !== null) body.seed = p.seed;
  const audio = audioChoice();
  if (audio !== null) body.audio = audio;
  const own = providerParams();
  if (Object.keys(own).length) body.provider_params = own;
  return body;
}

async function onSubmit(event) {
  event.preventDefault();
  const messages = $("form-messages");
  messages.replaceChildren();
  if (!currentModel()) {
    messages.append(alert("error", "Pick a model first", "No usable model is selected."));
    return;
  }
  if (!$("prompt").value.trim()) {
    messages.append(alert("error", "Describe the video", "The prompt is empty."));
    $("prompt").focus();
    return;
  }
  const button = $("submit");
  button.disabled = true;
  button.textContent = "Submitting…";
  try {
    const job = await api.submit(buildRequest());
    window.history.pushState(null, "", `#/jobs/${encodeURIComponent(job.id)}`);
    showJob(job);
  } catch (err) {
    messages.append(explainApiError(err));
  } finally {
    button.disabled = false;
    button.textContent = "Generate video";
  }
}

// ───────────────────────────── the job panel ─────────────────────────────

function setProgress(value) {
  const v = Math.max(0, Math.min(100, Math.round(Number(value) || 0)));
  const bar = $("progress");
  if (bar.getAttribute("aria-valuenow") !== String(v)) bar.setAttribute("aria-valuenow", String(v));
  $("progress-fill").style.setProperty("--p", `${v}%`);
  $("progress-pct").textContent = `${v}%`;
}

function statusText(status, progress, job) {
  const model = job?.attempts?.length ? job.attempts[job.attempts.length - 1].model : job?.model;
  switch (status) {
    case "queued":
      return job?.attempts?.length ? `Queued for ${model}` : "Queued — waiting for a worker";
    case "in_progress": {
      // The job says what it is doing; the bands (submitting 1–4, rendering 5–90,
      // storing 90–99) are only the fallback for a gateway that does not.
      const stage = job?.stage || (progress < 5 ? "submitting" : "rendering");
      if (stage === "storing") return "Storing the video…";
      if (stage === "submitting") return `Submitting to ${model}…`;
      return `Rendering on ${model}…`;
    }
    case "completed":
      return "Done — your video is ready";
    case "failed":
      return "Failed";
    case "canceled":
      return "Canceled";
    default:
      return status;
  }
}

function stopTick() {
  if (state.tick) clearInterval(state.tick);
  state.tick = null;
}

function startTick(job) {
  stopTick();
  const started = job.created_at * 1000;
  const update = () => { $("job-elapsed").textContent = `elapsed ${elapsed((Date.now() - started) / 1000)}`; };
  update();
  state.tick = setInterval(update, 1000);
}

function renderResult(job) {
  const r = job.result;
  const box = $("result");
  if (job.status !== "completed" || !r || !r.url) {
    box.hidden = true;
    return;
  }
  const video = $("video");
  if (video.dataset.src !== r.url) {
    video.dataset.src = r.url;
    video.src = r.url;
    video.play().catch(() => {
      // browsers refuse unmuted autoplay without a gesture: play muted instead
      video.muted = true;
      video.play().catch(() => {});
    });
  }
  $("meta-cost").textContent = job.cost
    ? creditsLabel(job.cost.credits) + (job.cost.money ? ` (${money(job.cost.money)})` : "")
    : "—";
  $("meta-duration").textContent = seconds(r.duration_seconds ?? job.seconds);
  $("meta-model").textContent = job.delivered_by || job.model;
  fill($("meta-size"),
    r.width ? `${r.width}×${r.height}` : job.size,
    r.bytes ? el("span", { class: "sub" }, bytes(r.bytes)) : "",
  );
  const dl = $("download");
  dl.href = r.url;
  dl.setAttribute("download", `${job.id}.mp4`);
  box.hidden = false;
}

function renderStage(status, job) {
  const stage = $("stage");
  stage.hidden = FINAL.has(status);
  if (stage.hidden || !job) return;
  const [w, h] = String(job.size || "16x9").split("x").map(Number);
  if (w && h) stage.style.aspectRatio = `${w} / ${h}`;
  const p = job.params || {};
  const what = [`${job.seconds} s`, p.resolution, p.aspect_ratio].filter(Boolean).join(" · ");
  $("stage-text").textContent = status === "queued" ? `Waiting to render ${what}` : `Rendering ${what}`;
}

function renderJob(status, progress, job) {
  $("job-badge").textContent = STATUS_LABELS[status] || status;
  $("job-badge").className = `badge ${status}`;
  setProgress(progress);
  $("progress").classList.toggle("done", status === "completed");
  $("progress").classList.toggle("bad", status === "failed" || status === "canceled");
  $("progress").classList.toggle("live", !FINAL.has(status));
  $("status-text").textContent = statusText(status, progress, job);
  $("cancel-btn").hidden = FINAL.has(status);
  renderStage(status, job);
  if (!job) return;
  $("job-prompt").textContent = job.prompt;
  const note = explainJob({ ...job, status });
  $("job-messages").replaceChildren(...(note ? [note] : []));
  renderResult(job);
  if (FINAL.has(status)) {
    stopTick();
    if (job.completed_at) {
      $("job-elapsed").textContent = `took ${elapsed(job.completed_at - job.created_at)}`;
    }
  }
}

function resetOutput(job) {
  state.follow?.abort();
  stopTick();
  state.jobId = job.id;
  $("output-empty").hidden = true;
  $("job-view").hidden = false;
  $("job-id").textContent = job.id;
  $("job-messages").replaceChildren();
  $("result").hidden = true;
  const video = $("video");
  video.pause();
  video.removeAttribute("src");
  delete video.dataset.src;
  video.load();
  setProgress(0);
}

/** Show a job and, unless it is final, follow it live. */
export function showJob(job) {
  resetOutput(job);
  renderJob(job.status, job.progress, job);
  if (FINAL.has(job.status)) return;
  startTick(job);
  const ctrl = new AbortController();
  state.follow = ctrl;
  let last = job;
  followJob(
    job.id,
    (u) => {
      if (ctrl.signal.aborted) return;
      last = u.job || last;
      renderJob(u.status, u.progress, last);
    },
    ctrl.signal,
  )
    .then((final) => {
      if (ctrl.signal.aborted || !final) return;
      renderJob(final.status, final.progress, final);
      state.onFinal(final);
    })
    .catch((err) => {
      if (ctrl.signal.aborted) return;
      stopTick();
      $("job-messages").replaceChildren(explainApiError(err));
    });
}

/** Open a job by id (from a link such as #/jobs/video_…). */
export async function openJob(id) {
  if (state.jobId === id) return;
  state.jobId = id;
  try {
    showJob(await api.job(id));
  } catch (err) {
    state.jobId = null;
    $("output-empty").hidden = true;
    $("job-view").hidden = false;
    $("job-id").textContent = id;
    $("job-messages").replaceChildren(
      err instanceof ApiError && err.status === 404
        ? alert("error", "No such job", `No video job ${id} on this key's account.`)
        : explainApiError(err),
    );
  }
}

function editAgain() {
  $("prompt").focus();
  $("create-form").scrollIntoView({ behavior: "smooth", block: "start" });
}

async function onCancel() {
  if (!state.jobId) return;
  $("cancel-btn").disabled = true;
  try {
    await api.cancel(state.jobId);
  } catch (err) {
    $("job-messages").replaceChildren(explainApiError(err));
  } finally {
    $("cancel-btn").disabled = false;
  }
}

export function initStudio({ onFinal }) {
  state.onFinal = onFinal;
  initModelPicker({ onChoose: onModelChosen });
  $("create-form").addEventListener("submit", onSubmit);
  $("resolution").addEventListener("change", () => {
    refreshDurations(Number($("duration").value));
    refreshDependents();
  });
  for (const id of ["duration", "aspect", "seed", "negative-prompt", "audio", "provider-params"]) {
    $(id).addEventListener("change", refreshDependents);
  }
  $("image").addEventListener("change", onImageChosen);
  $("image-clear").addEventListener("click", clearImage);
  $("prompt").addEventListener("input", () => {
    $("prompt-count").textContent = `${$("prompt").value.length} / 4000`;
  });
  $("example-btn").addEventListener("click", () => {
    $("prompt").value = EXAMPLE_PROMPT;
    $("prompt").dispatchEvent(new Event("input"));
  });
  $("again-btn").addEventListener("click", editAgain);
  $("cancel-btn").addEventListener("click", onCancel);
}
