// The storyboard tab (#/storyboard): an editor of shots, in order. Each shot has a prompt,
// a model and the duration, resolution and aspect ratio that model allows (built from
// its allowedParams, as the studio builds its controls), and an optional start image.
// The options of the whole (continue from the previous shot's last frame, a crossfade
// at each join), the length and the estimated cost, submit (POST /v1/storyboards), and
// the account's recent storyboards (GET /v1/storyboards). A shot on a synced model also
// has its Audio choice (when the model has an audio switch) and its own inputs
// (provider_params, typed as a JSON object).

import { api } from "./api.js";
import {
  $, fill, creditsLabel, el, fromMillicredits, millicredits, money, relativeTime, secondsExact, STATUS_LABELS,
  sumDecimals, times,
} from "./format.js";
import { alert, explainApiError } from "./messages.js";
import { catalog, currentModelId, durationsFor, fillSelect, moneyPerSecond, perSecond, priceFor } from "./studio.js";

export const MAX_SHOTS = 20;
const CROSSFADES = [0, 0.25, 0.5, 1];
const RECENT_PAGE = 8;

const editor = {
  shots: [], // {uid, prompt, model, duration, resolution, aspect, image, imageName, audio, providerParams}
  errors: new Map(), // uid → {message, field}: what the gateway (or the page) said about a shot
  nextUid: 1,
  recentAfter: null,
  recentGen: 0,
  submitted: null, // the 202 answer, handed to the storyboard's page
};

// ───────────────────────────── a shot's settings ─────────────────────────────

/** Why model `m` cannot make a shot (null: it can); `fromFrame`: the shot starts from
 * the previous shot's last frame, so the model must take a start image. */
export function modelProblem(m, fromFrame) {
  if (!m || m.usable === false) return (m && m.not_usable_reason) || "not usable here";
  if (fromFrame && !m.allowedParams.image_input) return "takes no start frame";
  return null;
}

function pick(values, ...wanted) {
  const strings = values.map(String);
  for (const w of wanted) {
    const at = strings.indexOf(String(w));
    if (w !== null && w !== undefined && at >= 0) return values[at];
  }
  return values[0];
}

/** Fit a shot's settings to its model: keep what the model allows, else its defaults. */
export function fitShot(shot) {
  const m = catalog().byId.get(shot.model);
  if (!m) return;
  const a = m.allowedParams;
  const d = m.defaults || {};
  shot.resolution = pick(a.resolution, shot.resolution, d.resolution);
  shot.aspect = pick(a.aspect_ratio, shot.aspect, d.aspect_ratio);
  shot.duration = Number(pick(durationsFor(m, shot.resolution), shot.duration, d.duration_seconds));
  if (!a.image_input) {
    shot.image = null;
    shot.imageName = null;
  }
}

/** A shot's estimated cost: {millicredits, money: {amount, currency} | null}. */
function shotCost(shot) {
  const m = catalog().byId.get(shot.model);
  if (!m) return { millicredits: 0, money: null };
  const perSec = moneyPerSecond(m, shot.resolution);
  return {
    millicredits: millicredits(priceFor(m, shot.resolution)) * shot.duration,
    money: perSec ? { amount: times(perSec.amount, shot.duration), currency: perSec.currency } : null,
  };
}

function field(label, control, cls = "") {
  return el("label", { class: `field ${cls}`.trim() }, el("span", {}, label), control);
}

/**
 * The model, duration, resolution and aspect-ratio controls of one shot, built from
 * its model's allowedParams. `onChange()` runs after a control changed `shot`.
 * Also used by the storyboard's page to change a shot before retrying it.
 */
export function shotControls(shot, { label, fromFrame, error, onChange }) {
  const { models } = catalog();
  const usable = models.filter((m) => m.usable !== false);
  const invalid = (name) => (error && error.field === name ? "true" : null);
  const model = el(
    "select",
    { class: "shot-model", dataset: { role: "model" }, "aria-label": `${label} model`, "aria-invalid": invalid("model") },
    usable.map((m) => {
      const problem = modelProblem(m, fromFrame);
      const price = perSecond(m.price.credits_per_second);
      return el(
        "option",
        { value: m.id, disabled: Boolean(problem) },
        `${m.id} · ${price}${m.emulated ? " · emulated" : ""}${problem ? ` — ${problem}` : ""}`,
      );
    }),
  );
  model.value = shot.model;
  const m = catalog().byId.get(shot.model);
  const a = m ? m.allowedParams : { resolution: [], aspect_ratio: [] };
  const resolution = el("select", { class: "shot-resolution", dataset: { role: "resolution" }, "aria-label": `${label} resolution`, "aria-invalid": invalid("resolution") });
  const duration = el("select", { class: "shot-duration", dataset: { role: "duration" }, "aria-label": `${label} duration`, "aria-invalid": invalid("duration") });
  const aspect = el("select", { class: "shot-aspect", dataset: { role: "aspect" }, "aria-label": `${label} aspect ratio`, "aria-invalid": invalid("aspect") });
  fillSelect(resolution, a.resolution, shot.resolution);
  fillSelect(duration, m ? durationsFor(m, shot.resolution) : [], shot.duration, (v) => `${v} s`);
  fillSelect(aspect, a.aspect_ratio, shot.aspect);
  model.addEventListener("change", () => {
    shot.model = model.value;
    fitShot(shot);
    onChange("model");
  });
  resolution.addEventListener("change", () => {
    shot.resolution = resolution.value;
    fitShot(shot); // the durations this resolution allows
    onChange("resolution");
  });
  duration.addEventListener("change", () => {
    shot.duration = Number(duration.value);
    onChange("duration");
  });
  aspect.addEventListener("change", () => {
    shot.aspect = aspect.value;
    onChange("aspect");
  });
  return el(
    "div",
    { class: "shot-controls" },
    field("Model", model, "shot-model-field"),
    field("Duration", duration),
    field("Resolution", resolution),
    field("Aspect ratio", aspect),
  );
}

// ───────────────────────────── the shot cards ─────────────────────────────

const continues = () => $("sb-continue").checked;
const crossfade = () => Number($("sb-crossfade").value) || 0;

function newShot(after) {
  const { byId, models } = catalog();
  const first = models.find((m) => m.usable !== false);
  const current = byId.get(currentModelId());
  const preferred = current && current.usable !== false ? current.id : first?.id;
  const shot = {
    uid: editor.nextUid++,
    prompt: "",
    model: after ? after.model : preferred,
    duration: after ? after.duration : null,
    resolution: after ? after.resolution : null,
    aspect: after ? after.aspect : null,
    image: null,
    imageName: null,
    audio: after ? after.audio : null, // true / false, or null: the model's default
    providerParams: after ? after.providerParams : "", // the JSON text typed
  };
  fitShot(shot);
  return shot;
}

function readAsDataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function clearError(shot) {
  if (!editor.errors.delete(shot.uid)) return;
  const card = document.querySelector(`.shot-card[data-uid="${shot.uid}"]`);
  if (!card) return;
  card.classList.remove("invalid");
  card.querySelector(".shot-error").hidden = true;
  for (const node of card.querySelectorAll("[aria-invalid]")) {
    // provider parameters that are not a JSON object stay marked until they are fixed
    if (node.dataset.role === "provider-params" && parseProviderParams(node.value).error) continue;
    node.removeAttribute("aria-invalid");
  }
}

function imageField(shot, index, label) {
  const m = catalog().byId.get(shot.model);
  if (continues() && index > 0) {
    return el("p", { class: "shot-from-frame muted small" }, `Starts from shot ${index}'s last frame.`);
  }
  if (!m || !m.allowedParams.image_input) return null;
  const input = el("input", { type: "file", class: "shot-image", dataset: { role: "image" }, accept: "image/png,image/jpeg,image/webp", "aria-label": `${label} start image` });
  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    shot.image = await readAsDataUri(file);
    shot.imageName = file.name;
    clearError(shot);
    renderShots();
  });
  const clear = el("button", { type: "button", class: "link-btn", dataset: { role: "image-clear" } }, "Remove");
  clear.addEventListener("click", () => {
    shot.image = null;
    shot.imageName = null;
    renderShots();
  });
  return el(
    "div",
    { class: "field wide shot-image-field" },
    el("span", {}, "Start image ", el("em", { class: "muted" }, "optional — image-to-video")),
    el(
      "div",
      { class: "image-drop" },
      shot.image ? el("img", { src: shot.image, alt: `${label} start image` }) : null,
      shot.image ? el("span", { class: "muted small shot-image-name" }, shot.imageName || "image") : input,
      shot.image ? clear : null,
    ),
  );
}

// ───────────────────────────── a synced model's own inputs ─────────────────────────────

const syncedModel = (shot) => {
  const m = catalog().byId.get(shot.model);
  return m && m.synced ? m : null;
};
const hasAudio = (m) => (m.capabilities || []).includes("audio");

/** A shot's provider parameters: {value} (an object, or null when none are typed) or
 * {error} when the text is not a JSON object. */
export function parseProviderParams(text) {
  const raw = String(text || "").trim();
  if (!raw) return { value: null };
  let value;
  try {
    value = JSON.parse(raw);
  } catch {
    return { error: "Not valid JSON: write an object such as {\"name\": value}." };
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    return { error: "Provider parameters must be a JSON object: {\"name\": value}." };
  }
  return { value };
}

/** The Audio choice and the provider parameters of a shot on a synced model (null otherwise). */
function syncedFields(shot, label, error) {
  const m = syncedModel(shot);
  if (!m) return null;
  const audio = hasAudio(m)
    ? el("select", {
      class: "shot-audio", dataset: { role: "audio" }, "aria-label": `${label} audio`,
      "aria-invalid": error && error.field === "audio" ? "true" : null,
    },
      el("option", { value: "" }, "the model's default"),
      el("option", { value: "on" }, "on"),
      el("option", { value: "off" }, "off"))
    : null;
  if (audio) {
    audio.value = shot.audio === null || shot.audio === undefined ? "" : shot.audio ? "on" : "off";
    audio.addEventListener("change", () => {
      shot.audio = audio.value === "" ? null : audio.value === "on";
      clearError(shot);
    });
  }
  const names = Object.keys(m.synced.provider_params || {});
  const params = el("input", {
    type: "text",
    class: "shot-provider-params",
    dataset: { role: "provider-params" },
    "aria-label": `${label} provider parameters`,
    spellcheck: "false",
    autocomplete: "off",
    placeholder: names.length ? `JSON object — ${names.join(", ")}` : "JSON object — this model lists no own inputs",
  });
  params.value = shot.providerParams || "";
  const problem = el("p", { class: "shot-pp-error small", role: "alert" });
  let shown = error; // the gateway's (or the page's) word on this shot, until it is changed
  const check = () => {
    const bad = parseProviderParams(params.value).error;
    problem.textContent = bad || "";
    problem.hidden = !bad;
    if (bad || (shown && shown.field === "provider-params")) params.setAttribute("aria-invalid", "true");
    else params.removeAttribute("aria-invalid");
  };
  params.addEventListener("input", () => {
    shot.providerParams = params.value;
    shown = null;
    clearError(shot);
    check();
  });
  check();
  return el(
    "div",
    { class: "shot-synced" },
    audio ? field("Audio", audio, "shot-audio-field") : null,
    el("label", { class: "field shot-pp-field" },
      el("span", {}, "Provider parameters ", el("em", { class: "muted" }, `optional — ${m.synced.provider || "the provider"}'s own inputs`)),
      params),
    problem,
  );
}

function iconButton(role, text, title, disabled, onClick) {
  const b = el("button", { type: "button", class: "btn small ghost icon-btn", dataset: { role }, title, "aria-label": title, disabled }, text);
  b.addEventListener("click", onClick);
  return b;
}

function move(index, by) {
  const to = index + by;
  if (to < 0 || to >= editor.shots.length) return;
  const [shot] = editor.shots.splice(index, 1);
  editor.shots.splice(to, 0, shot);
  // a shot that no longer may carry its image (it now follows another) keeps it in
  // the state but does not send it; nothing else about it changes
  renderShots();
}

function shotCard(shot, index) {
  const n = editor.shots.length;
  const label = `Shot ${index + 1}`;
  const fromFrame = continues() && index > 0;
  const error = editor.errors.get(shot.uid);
  const cost = shotCost(shot);
  const prompt = el("textarea", {
    class: "shot-prompt",
    dataset: { role: "prompt" },
    rows: 3,
    maxlength: 4000,
    "aria-label": `${label} prompt`,
    "aria-invalid": error && error.field === "prompt" ? "true" : null,
    placeholder: index === 0
      ? "What happens first: the subject, the motion, the camera."
      : "What happens next, with the same subject and setting.",
  });
  prompt.value = shot.prompt;
  prompt.addEventListener("input", () => {
    shot.prompt = prompt.value;
    clearError(shot);
  });
  const controls = shotControls(shot, {
    label,
    fromFrame,
    error,
    onChange: (what) => {
      if (what === "model") {
        // audio and provider parameters belong to the model they were set for
        shot.audio = null;
        shot.providerParams = "";
      }
      clearError(shot);
      renderShots();
    },
  });
  const head = el(
    "div",
    { class: "shot-head" },
    el("span", { class: "step shot-no" }, String(index + 1)),
    el("h2", {}, label),
    el("span", { class: "muted small shot-summary" },
      [`${shot.duration} s`, shot.resolution, shot.aspect].join(" · "),
      ` · ≈ ${creditsLabel(fromMillicredits(cost.millicredits))}`),
    el("span", { class: "grow" }),
    iconButton("up", "↑", `Move shot ${index + 1} up`, index === 0, () => move(index, -1)),
    iconButton("down", "↓", `Move shot ${index + 1} down`, index === n - 1, () => move(index, 1)),
    iconButton("remove", "✕", `Remove shot ${index + 1}`, n === 1, () => {
      editor.shots.splice(index, 1);
      editor.errors.delete(shot.uid);
      renderShots();
    }),
  );
  const problem = modelProblem(catalog().byId.get(shot.model), fromFrame);
  return el(
    "li",
    { class: `shot-card${error ? " invalid" : ""}`, dataset: { shot: index + 1, uid: shot.uid } },
    head,
    prompt,
    controls,
    syncedFields(shot, label, error),
    imageField(shot, index, label),
    problem && !error
      ? el("p", { class: "shot-warning small" }, `${shot.model} ${problem}: pick a model that takes a start image, or turn off "continue".`)
      : null,
    el("p", { class: "shot-error", role: "alert", hidden: !error }, error ? error.message : ""),
  );
}

/** Draw every shot card again, keeping the keyboard focus on the same control. */
function renderShots() {
  const active = document.activeElement;
  const card = active?.closest?.(".shot-card");
  const focus = card && active.dataset.role ? [card.dataset.uid, active.dataset.role] : null;
  $("sb-shots").replaceChildren(...editor.shots.map(shotCard));
  if (focus) {
    const again = document.querySelector(`.shot-card[data-uid="${focus[0]}"] [data-role="${focus[1]}"]`);
    if (again && !again.disabled) again.focus();
    else document.querySelector(`.shot-card[data-uid="${focus[0]}"] .shot-prompt`)?.focus();
  }
  $("sb-add").disabled = editor.shots.length >= MAX_SHOTS;
  $("sb-add-hint").textContent =
    editor.shots.length >= MAX_SHOTS ? `A storyboard has at most ${MAX_SHOTS} shots.` : "";
  renderOptions();
  renderTotals();
}

// ───────────────────────────── options and totals ─────────────────────────────

function shortestShot() {
  return Math.min(...editor.shots.map((s) => s.duration));
}

function renderOptions() {
  const select = $("sb-crossfade");
  const chosen = select.value === "" ? "0" : select.value;
  const shortest = shortestShot();
  select.replaceChildren(
    ...CROSSFADES.map((c) =>
      el("option", { value: c, disabled: c > 0 && c >= shortest }, c ? `${c} s` : "none (cut)"),
    ),
  );
  // a crossfade must be shorter than every shot: a longer one falls back to the longest allowed
  const allowed = CROSSFADES.filter((c) => c === 0 || c < shortest);
  select.value = String(allowed.includes(Number(chosen)) ? Number(chosen) : allowed[allowed.length - 1]);
  select.disabled = editor.shots.length < 2;
  $("sb-crossfade-hint").textContent =
    editor.shots.length < 2
      ? "One shot: nothing to join."
      : CROSSFADES.some((c) => c > 0 && c >= shortest)
        ? `A crossfade must be shorter than every shot (the shortest is ${shortest} s).`
        : "";
}

/** The exact sum of money amounts, with no zeros past the cents: "0.260" → "0.26". */
function moneySum(amounts) {
  return sumDecimals(amounts).replace(/(\.\d{2}\d*?)0+$/, "$1");
}

function renderTotals() {
  const shots = editor.shots;
  const n = shots.length;
  const sum = shots.reduce((t, s) => t + s.duration, 0);
  const fades = n > 1 ? crossfade() * (n - 1) : 0;
  $("sb-total-shots").textContent = String(n);
  fill($("sb-total-seconds"),
    secondsExact(sum - fades),
    fades ? el("span", { class: "sub" }, `${secondsExact(sum)} of shots − ${n - 1} × ${secondsExact(crossfade())}`) : null,
  );
  const costs = shots.map(shotCost);
  const total = fromMillicredits(costs.reduce((t, c) => t + c.millicredits, 0));
  const currency = costs[0]?.money?.currency;
  const priced = costs.every((c) => c.money && c.money.currency === currency);
  fill($("sb-total-cost"),
    creditsLabel(total),
    priced ? el("span", { class: "sub", id: "sb-total-money" }, money({ amount: moneySum(costs.map((c) => c.money.amount)), currency })) : null,
  );
  $("sb-submit").textContent = n > 1 ? `Make the storyboard · ${n} shots` : "Make the storyboard";
}

// ───────────────────────────── submit ─────────────────────────────

/** "shots[1].duration_seconds" or "shots.1.prompt" → {index: 1, field: "duration"}. */
export function shotOfParam(param) {
  const m = /^shots(?:\[(\d+)\]|\.(\d+))(?:\.([a-z_]+))?/.exec(String(param || ""));
  if (!m) return null;
  const FIELDS = {
    duration_seconds: "duration", resolution: "resolution", aspect_ratio: "aspect",
    prompt: "prompt", model: "model", fallback: "model", image: "image", image_url: "image",
    audio: "audio", provider_params: "provider-params",
  };
  return { index: Number(m[1] ?? m[2]), field: FIELDS[m[3]] || null };
}

function buildRequest() {
  const from = continues();
  return {
    shots: editor.shots.map((s, i) => {
      const shot = {
        model: s.model,
        prompt: s.prompt.trim(),
        duration_seconds: s.duration,
        resolution: s.resolution,
        aspect_ratio: s.aspect,
      };
      if (s.image && !(from && i > 0)) shot.image = s.image;
      const m = syncedModel(s);
      if (m) {
        if (hasAudio(m) && typeof s.audio === "boolean") shot.audio = s.audio;
        const { value } = parseProviderParams(s.providerParams);
        if (value && Object.keys(value).length) shot.provider_params = value;
      }
      return shot;
    }),
    continue_from_previous: from,
    crossfade_seconds: editor.shots.length > 1 ? crossfade() : 0,
  };
}

/** What the page can tell before asking the gateway: empty prompts, impossible models. */
function checkLocally() {
  const problems = [];
  editor.shots.forEach((s, i) => {
    const problem = modelProblem(catalog().byId.get(s.model), continues() && i > 0);
    if (!s.prompt.trim()) {
      problems.push([s, { field: "prompt", message: `Shot ${i + 1} has no prompt: describe what happens in it.` }]);
    } else if (problem) {
      problems.push([s, { field: "model", message: `Shot ${i + 1}: ${s.model} ${problem}.` }]);
    } else if (syncedModel(s)) {
      const { error } = parseProviderParams(s.providerParams);
      if (error) problems.push([s, { field: "provider-params", message: `Shot ${i + 1}: ${error}` }]);
    }
  });
  return problems;
}

function showShotError(index, error) {
  const shot = editor.shots[index];
  if (!shot) return;
  editor.errors.set(shot.uid, error);
}

function scrollToFirstError() {
  const card = document.querySelector(".shot-card.invalid");
  if (!card) return;
  card.scrollIntoView({ block: "center" });
  const control = card.querySelector("[aria-invalid='true']") || card.querySelector(".shot-prompt");
  control.focus({ preventScroll: true });
}

async function onSubmit(event) {
  event.preventDefault();
  const messages = $("sb-messages");
  messages.replaceChildren();
  editor.errors.clear();
  renderShots();
  if (!editor.shots.length || !catalog().models.some((m) => m.usable !== false)) {
    messages.append(alert("error", "No usable model", "This key cannot use any video model here."));
    return;
  }
  const problems = checkLocally();
  if (problems.length) {
    for (const [shot, error] of problems) editor.errors.set(shot.uid, error);
    renderShots();
    const first = problems[0][1];
    messages.append(alert("error", problems.length > 1 ? `${problems.length} shots need a change` : "A shot needs a change", first.message));
    scrollToFirstError();
    return;
  }
  const button = $("sb-submit");
  button.disabled = true;
  button.textContent = "Submitting…";
  const n = editor.shots.length;
  try {
    const sb = await api.createStoryboard(buildRequest());
    editor.submitted = sb;
    window.location.hash = `#/storyboards/${encodeURIComponent(sb.id)}`;
  } catch (err) {
    messages.append(explainApiError(err, { subject: n > 1 ? `these ${n} shots` : "this shot" }));
    const where = shotOfParam(err.details?.param);
    if (where) {
      showShotError(where.index, { field: where.field, message: err.message });
      renderShots();
      scrollToFirstError();
    }
  } finally {
    button.disabled = false;
    renderTotals();
  }
}

/** The 202 answer of the storyboard just made (so its page needs no second read). */
export function takeSubmitted(id) {
  const sb = editor.submitted;
  editor.submitted = null;
  return sb && sb.id === id ? sb : null;
}

// ───────────────────────────── recent storyboards ─────────────────────────────

/** A storyboard's length: the joined video's, else the shots' asked-for seconds. */
export function storyboardSeconds(sb) {
  if (sb.result?.duration_seconds) return sb.result.duration_seconds;
  const sum = sb.shots.reduce((t, s) => t + (s.duration_seconds || 0), 0);
  return sum - (sb.shots.length > 1 ? (sb.crossfade_seconds || 0) * (sb.shots.length - 1) : 0);
}

function recentItem(sb) {
  const created = sb.created_at ? new Date(sb.created_at * 1000) : null;
  const n = sb.shots.length;
  const first = sb.shots[0]?.prompt || "";
  const facts = [
    `${n} ${n === 1 ? "shot" : "shots"}`,
    secondsExact(storyboardSeconds(sb)),
    sb.cost ? creditsLabel(sb.cost.credits) : null,
    created ? relativeTime(created) : null,
  ].filter(Boolean);
  return el(
    "li",
    {},
    el(
      "a",
      { class: "sb-recent-link", href: `#/storyboards/${encodeURIComponent(sb.id)}`, dataset: { storyboard: sb.id }, title: first },
      el("span", { class: `badge ${sb.status}` }, STATUS_LABELS[sb.status] || sb.status),
      el("span", { class: "sb-recent-prompt" }, first),
      el("span", { class: "muted small sb-recent-facts" }, facts.join(" · ")),
    ),
  );
}

async function loadRecent({ more = false } = {}) {
  const gen = ++editor.recentGen;
  if (!more) editor.recentAfter = null;
  $("sb-recent-messages").replaceChildren();
  let page;
  try {
    page = await api.storyboards({ limit: RECENT_PAGE, after: editor.recentAfter });
  } catch (err) {
    if (gen === editor.recentGen) $("sb-recent-messages").replaceChildren(explainApiError(err));
    return;
  }
  if (gen !== editor.recentGen) return;
  const items = page.data.map(recentItem);
  if (more) $("sb-recent").append(...items);
  else $("sb-recent").replaceChildren(...items);
  editor.recentAfter = page.last_id;
  $("sb-recent-more").hidden = !page.has_more;
  $("sb-recent-empty").hidden = $("sb-recent").children.length > 0;
}

// ───────────────────────────── the tab ─────────────────────────────

/** Show the editor (the router calls this): fit the shots to the catalog, list the recent. */
export function openStoryboardEditor() {
  const { models } = catalog();
  const usable = models.filter((m) => m.usable !== false);
  $("sb-models-state").textContent = models.length
    ? `${usable.length} of ${models.length} models usable here`
    : "no models: check the API key";
  if (usable.length) {
    if (!editor.shots.length) editor.shots.push(newShot(null));
    for (const shot of editor.shots) {
      if (!catalog().byId.has(shot.model) || catalog().byId.get(shot.model).usable === false) shot.model = usable[0].id;
      fitShot(shot);
    }
    renderShots();
  }
  loadRecent();
}

export function initStoryboard() {
  $("sb-crossfade").replaceChildren(...CROSSFADES.map((c) => el("option", { value: c }, c ? `${c} s` : "none (cut)")));
  $("sb-crossfade").value = "0";
  $("sb-form").addEventListener("submit", onSubmit);
  $("sb-add").addEventListener("click", () => {
    if (editor.shots.length >= MAX_SHOTS) return;
    editor.shots.push(newShot(editor.shots[editor.shots.length - 1] || null));
    renderShots();
    const cards = document.querySelectorAll(".shot-card");
    cards[cards.length - 1]?.querySelector(".shot-prompt")?.focus();
  });
  $("sb-continue").addEventListener("change", () => {
    for (const [uid, error] of editor.errors) if (error.field === "image" || error.field === "model") editor.errors.delete(uid);
    renderShots();
  });
  $("sb-crossfade").addEventListener("change", renderTotals);
  $("sb-recent-refresh").addEventListener("click", () => loadRecent());
  $("sb-recent-more").addEventListener("click", () => loadRecent({ more: true }));
}
