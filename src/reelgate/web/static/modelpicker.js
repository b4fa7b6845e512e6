// The studio's model picker: the model list (the builtin models, or the answer of its
// search GET /v1/models?search= over every model, synced ones such as fal:... and
// replicate:... included), the remembered model, and the controls that come with the
// chosen model alone: its Audio switch and a synced model's own inputs
// (synced.provider_params). The rest of the form is the studio's (studio.js), told of each
// choice through initModelPicker's onChoose; this module never builds the request.

import { api } from "./api.js";
import { $, credits, el, money } from "./format.js";
import { explainApiError } from "./messages.js";

const MODEL_STORAGE = "reelgate.model";
const SEARCH_LIMIT = 50;
const SEARCH_DELAY_MS = 250;

const state = {
  models: [], // the builtin models
  byId: new Map(), // ... by id
  found: null, // the search's answer ({data, total}), or null: the builtin list is shown
  search: { timer: null, ctrl: null },
  model: null, // the selected model object (kept when it leaves the list)
  onChoose: () => {}, // the studio's form follows the chosen model: (model, changed) => void
};

// ───────────────────────────── models ─────────────────────────────

export const perSecond = (value) => `${credits(value)} ${credits(value) === "1" ? "credit" : "credits"}/s`;

/** Why model `m` cannot be picked here (null: it can). A synced model the API lists may
 * still be refused at submit: unpriced, retired upstream, or not mapped onto reelgate's
 * request. */
export function notOffered(m) {
  if (m.usable === false) return m.not_usable_reason || (m.available === false ? "unavailable" : "not enabled");
  const s = m.synced;
  if (!s) return null;
  if (s.status && s.status !== "active") return `${s.status} at ${s.provider}: no longer offered there`;
  if (m.priced === false) {
    return "Unpriced — not offered: no price per second is known for it on this gateway " +
      "(an operator can set one in the config file).";
  }
  if (s.mapping && s.mapping.status !== "mapped") {
    const why = (s.mapping.problems || []).join("; ") || "its schema does not fit reelgate's request";
    return `Not offered: ${why}.`;
  }
  return null;
}

function offTag(m) {
  const s = m.synced;
  if (s?.status && s.status !== "active") return s.status;
  if (s?.mapping && s.mapping.status !== "mapped") return "not offered";
  if (m.priced === false) return "unpriced — not offered";
  if (m.usable === false) return m.available === false ? "unavailable" : "not enabled";
  return null;
}

function modelCard(m) {
  const reason = notOffered(m);
  const off = offTag(m);
  const s = m.synced;
  const tags = [
    s ? el("span", { class: "tag synced", title: `Synced from ${s.provider}'s own schema for ${s.upstream_id}` }, `synced · ${s.provider}`) : null,
    m.emulated ? el("span", { class: "tag emulated", title: "Served by a local emulator of the provider's API" }, "emulated") : null,
    m.lifecycle === "preview" ? el("span", { class: "tag emulated", title: `Preview on its ${m.route || ""} route` }, "preview") : null,
    m.lifecycle === "deprecated" || m.lifecycle === "retired"
      ? el("span", {
          class: "tag deprecated",
          title: (m.deprecated || m.lifecycle) + (m.successor ? `; successor: ${m.successor}` : ""),
        }, m.lifecycle)
      : null,
    off ? el("span", { class: "tag off" }, off) : null,
  ];
  const caps = m.capabilities || [];
  const input = el("input", {
    type: "radio", name: "model", value: m.id, disabled: Boolean(reason), "aria-describedby": `model-${m.id}-desc`,
  });
  input.addEventListener("change", () => chooseModel(m));
  return el(
    "label",
    { class: `model-card${reason ? " disabled" : ""}`, dataset: { model: m.id }, title: reason || null },
    input,
    el("span", { class: "model-name" }, m.display_name || m.id),
    el("div", { class: "model-sub" }, el("code", { class: "model-id" }, m.id), el("span", { class: "tags" }, tags)),
    el("p", { class: "model-strengths", id: `model-${m.id}-desc` }, m.strengths || ""),
    el("div", { class: "model-facts" },
      el("span", { title: "Longest clip" }, `up to ${m.max_duration_seconds} s`),
      m.priced === false
        ? el("span", { title: "No price is known for it here" }, "no price")
        : el("span", { title: "Price per second of delivered video" }, perSecond(m.price.credits_per_second),
          m.price.money_per_second ? el("span", { class: "muted money" }, ` · ${money(m.price.money_per_second)}/s`) : null),
      m.allowedParams.image_input ? el("span", { title: "Accepts a start image" }, "image → video") : null,
      caps.includes("audio") ? el("span", { title: "Has an audio switch" }, "audio") : null),
    m.notes ? el("p", { class: "model-notes" }, m.notes) : null,
    reason ? el("p", { class: "model-reason" }, reason) : null,
  );
}

const isVideo = (m) => !m.modality || m.modality === "video";
// offered ones first, the API's order otherwise
const offeredFirst = (models) => models.sort((a, b) => Number(!notOffered(b)) - Number(!notOffered(a)));

/** Every builtin model, page after page. */
async function builtinModels() {
  const out = [];
  let after;
  do {
    const body = await api.models({ source: "builtin", limit: 500, after });
    out.push(...body.data);
    after = body.has_more ? body.next_cursor : null;
  } while (after);
  return out.filter(isVideo);
}

/** The remembered model when it is not a builtin one (a synced model picked earlier). */
async function rememberedModel(id) {
  try {
    return await api.model(id);
  } catch {
    return null; // gone since, or never there: the first usable one is picked instead
  }
}

export async function loadModels() {
  $("models-state").textContent = "loading…";
  let models;
  try {
    models = offeredFirst(await builtinModels());
  } catch (err) {
    $("models-state").textContent = "";
    $("model-list").replaceChildren(explainApiError(err));
    return false;
  }
  state.models = models;
  state.byId = new Map(models.map((m) => [m.id, m]));
  const stored = localStorage.getItem(MODEL_STORAGE);
  let pick = stored ? state.byId.get(stored) || (await rememberedModel(stored)) : null;
  if (!pick || notOffered(pick)) pick = models.find((m) => !notOffered(m)) || null;
  if (pick) chooseModel(pick);
  renderModelList();
  if (searchQuery()) scheduleSearch(0); // a new key may see other models
  return true;
}

/** The builtin models from GET /v1/models (usable first), with the synced model picked
 * from a search, and by id; empty until loaded. */
export function catalog() {
  // the hand-written models, and the synced one picked here (from a search): so a
  // storyboard's shots can use it too
  const picked = state.model;
  if (!picked || state.byId.has(picked.id)) return { models: state.models, byId: state.byId };
  return { models: [picked, ...state.models], byId: new Map([[picked.id, picked], ...state.byId]) };
}

/** The model the studio has selected (a storyboard's first shot starts with it). */
export function currentModelId() {
  return state.model?.id || null;
}

/** The selected model object, or null before one is chosen. */
export function currentModel() {
  return state.model;
}

// ───────────────────────────── the model list and its search ─────────────────────────────

function modelsStateText() {
  const found = state.found;
  if (!found) {
    const usable = state.models.filter((m) => !notOffered(m)).length;
    return `${usable} of ${state.models.length} usable here`;
  }
  if (!found.total) return "no model matches";
  const n = `${found.total} ${found.total === 1 ? "match" : "matches"}`;
  return found.total > found.data.length ? `${n}, the first ${found.data.length} shown` : n;
}

/** The search's matches, or the builtin list with the selected model pinned first when it
 * is not one of them (a synced model picked in a search). */
function renderModelList() {
  const found = state.found;
  const m = state.model;
  const pinned = !found && m && !state.byId.has(m.id) ? [m] : [];
  const models = [...pinned, ...(found ? found.data : state.models)];
  const empty = el("p", { class: "model-empty muted" },
    found ? "No model matches: try fewer words, or other ones." : "No models on this gateway.");
  $("model-list").replaceChildren(...(models.length ? models.map(modelCard) : [empty]));
  $("models-state").textContent = modelsStateText();
  markSelected();
}

function markSelected() {
  const id = state.model?.id;
  for (const card of document.querySelectorAll("#model-list .model-card")) {
    const on = card.dataset.model === id;
    card.classList.toggle("selected", on);
    card.querySelector("input").checked = on;
  }
}

function searchQuery() {
  const words = $("model-search").value.trim();
  const capability = [...document.querySelectorAll("#cap-chips input:checked")].map((i) => i.value);
  return words || capability.length ? { search: words, capability, limit: SEARCH_LIMIT } : null;
}

/** Ask GET /v1/models?search= after a pause in typing; a newer search aborts an older one. */
function scheduleSearch(delay = SEARCH_DELAY_MS) {
  clearTimeout(state.search.timer);
  state.search.timer = setTimeout(runSearch, delay);
}

async function runSearch() {
  state.search.ctrl?.abort();
  state.search.ctrl = null;
  for (const chip of document.querySelectorAll("#cap-chips .chip")) {
    chip.classList.toggle("on", chip.querySelector("input").checked);
  }
  const query = searchQuery();
  if (!query) {
    state.found = null;
    renderModelList();
    return;
  }
  const ctrl = new AbortController();
  state.search.ctrl = ctrl;
  $("models-state").textContent = "searching…";
  try {
    const body = await api.models(query, ctrl.signal);
    if (ctrl.signal.aborted) return;
    const data = offeredFirst(body.data.filter(isVideo));
    state.found = { data, total: body.total ?? data.length };
    renderModelList();
  } catch (err) {
    if (ctrl.signal.aborted) return;
    $("models-state").textContent = "the search failed";
    $("model-list").replaceChildren(explainApiError(err));
  }
}

// ───────────────────────────── the selected model ─────────────────────────────

/** Select a builtin model, or one shown by the search, by id. */
export function selectModel(id) {
  const found = state.found?.data.find((m) => m.id === id);
  chooseModel(state.byId.get(id) || found || (state.model?.id === id ? state.model : null));
}

function chooseModel(m) {
  if (!m || notOffered(m)) return;
  const changed = state.model?.id !== m.id;
  state.model = m;
  localStorage.setItem(MODEL_STORAGE, m.id);
  markSelected();
  $("field-audio").hidden = !(m.capabilities || []).includes("audio");
  if (changed) {
    resetAudio();
    renderProviderParams(m);
  }
  state.onChoose(m, changed);
}

// The audio switch starts at the model's default (the price shown is for it): it is sent
// only once the user sets it.
function resetAudio() {
  const box = $("audio");
  box.checked = false;
  box.indeterminate = true;
  delete box.dataset.set;
  $("audio-hint").textContent = "the model's default";
}

function onAudioChange() {
  const box = $("audio");
  box.dataset.set = "1";
  $("audio-hint").textContent = box.checked ? "on" : "off";
}

/** The audio switch as the request should carry it: true or false once the user set it,
 * null (left out: the model's default) otherwise. */
export function audioChoice() {
  const box = $("audio");
  return !$("field-audio").hidden && box.dataset.set ? box.checked : null;
}

// ───────────────────────────── provider parameters ─────────────────────────────

/** A schema type, which may be a list (["string", "null"]). */
const typeOf = (p) => [].concat(p.type || "string").find((t) => t !== "null") || "string";
const valueText = (v) => (typeof v === "string" ? v : JSON.stringify(v));

function describe(p) {
  const type = typeOf(p);
  const lo = p.minimum ?? p.exclusiveMinimum;
  const hi = p.maximum ?? p.exclusiveMaximum;
  const range = lo !== undefined && hi !== undefined ? `${lo}–${hi}` : lo !== undefined ? `≥ ${lo}` : hi !== undefined ? `≤ ${hi}` : null;
  return [
    type,
    Array.isArray(p.enum) ? p.enum.map(valueText).join(" | ") : range,
    p.default !== undefined ? `default ${valueText(p.default)}` : null,
    p.required ? "required" : null,
  ].filter(Boolean).join(" · ");
}

function paramControl(name, p) {
  const id = `pp-${name}`;
  const type = typeOf(p);
  const unset = p.default !== undefined ? `default (${valueText(p.default)})` : "not set";
  if (Array.isArray(p.enum)) {
    // option values are indexes into the enum, so a number stays a number
    return el("select", { id }, el("option", { value: "" }, unset),
      p.enum.map((v, i) => el("option", { value: String(i) }, valueText(v))));
  }
  if (type === "boolean") {
    const box = el("input", { type: "checkbox", id });
    box.checked = p.default === true;
    box.indeterminate = p.default === undefined;
    box.addEventListener("change", () => { box.dataset.set = "1"; });
    return box;
  }
  if (type === "integer" || type === "number") {
    return el("input", {
      type: "number", id, min: p.minimum, max: p.maximum, step: type === "integer" ? "1" : "any", placeholder: unset,
    });
  }
  const hint = type === "array" || type === "object" ? `JSON, e.g. ${type === "array" ? '["…"]' : '{"…": …}'}` : unset;
  return el("input", { type: "text", id, placeholder: hint, spellcheck: "false", autocomplete: "off" });
}

function renderProviderParams(m) {
  const params = m.synced?.provider_params || {};
  const rows = Object.entries(params).map(([name, p]) => {
    const control = paramControl(name, p);
    const label = el("label", { for: control.id, class: "pp-name" }, el("code", {}, name));
    return el("div", { class: `pp-row${typeOf(p) === "boolean" ? " pp-bool" : ""}`, dataset: { name } },
      label,
      el("span", { class: "pp-type muted" }, describe(p)),
      control,
      p.description ? el("p", { class: "pp-desc muted" }, p.description) : null);
  });
  $("pp-list").replaceChildren(...rows);
  $("provider-params").hidden = rows.length === 0;
}

/** The provider parameters the user changed, typed as the schema wants them. */
export function providerParams() {
  const params = state.model?.synced?.provider_params;
  if (!params || $("provider-params").hidden) return {};
  const out = {};
  for (const row of $("pp-list").children) {
    const name = row.dataset.name;
    const p = params[name];
    const input = row.querySelector("input, select");
    if (input.type === "checkbox") {
      if (input.dataset.set && input.checked !== p.default) out[name] = input.checked;
      continue;
    }
    const raw = input.value.trim();
    if (raw === "") continue;
    const type = typeOf(p);
    if (Array.isArray(p.enum)) out[name] = p.enum[Number(raw)];
    else if (input.type === "number") out[name] = Number(raw);
    else if (type === "array" || type === "object") out[name] = parseOr(raw);
    else out[name] = raw;
  }
  return out;
}

// not JSON: sent as typed, so the gateway's schema check says what it wants
function parseOr(raw) {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** Wire the search box, the capability chips and the audio switch; `onChoose(model,
 * changed)` runs after each choice of a model. */
export function initModelPicker({ onChoose }) {
  state.onChoose = onChoose;
  $("audio").addEventListener("change", onAudioChange);
  $("model-search").addEventListener("input", () => scheduleSearch($("model-search").value.trim() ? SEARCH_DELAY_MS : 0));
  $("model-search").addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault(); // Enter searches now; it does not submit the form
    scheduleSearch(0);
  });
  $("cap-chips").addEventListener("change", () => scheduleSearch(0));
}
