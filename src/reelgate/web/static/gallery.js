// The gallery view: the account's videos (GET /v1/videos) as a grid of posters, newest
// first, paged with "Load more" (after = last_id), filtered by model and status. The
// filters live in the address (#/gallery?model=local&status=completed&limit=24), so a
// reload or a video's back link keeps them. Over a poster, the pointer's horizontal
// position picks a tile of the video's sprite sheet (result.spritesheet gives its
// layout); the arrow keys step through the tiles of a focused card.

import { api } from "./api.js";
import { $, creditsLabel, cssUrl, el, money, parseHash, relativeTime, seconds, STATUS_LABELS } from "./format.js";
import { explainApiError } from "./messages.js";

export const DEFAULT_PAGE_SIZE = 24;

const view = { gen: 0, after: null, filters: null, models: null };

/** The gallery's filters from the address's query (values the API would refuse dropped). */
export function galleryFilters(params) {
  const status = params.get("status") || "";
  const limit = Number(params.get("limit"));
  return {
    model: params.get("model") || "",
    status: Object.hasOwn(STATUS_LABELS, status) ? status : "",
    limit: Number.isInteger(limit) && limit >= 1 && limit <= 100 ? limit : DEFAULT_PAGE_SIZE,
  };
}

/** The filters as the address's query ("" for none), for the gallery and a video's back link. */
export function galleryQuery(filters) {
  const q = new URLSearchParams();
  if (filters.model) q.set("model", filters.model);
  if (filters.status) q.set("status", filters.status);
  if (filters.limit && filters.limit !== DEFAULT_PAGE_SIZE) q.set("limit", String(filters.limit));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The length a card shows: what the copy measured, else what was asked for. */
export function jobSeconds(job) {
  return job.result?.duration_seconds ?? job.params?.duration_seconds ?? Number(job.seconds);
}

export function costText(job) {
  if (!job.cost) return "—";
  const worth = job.cost.money ? ` · ${money(job.cost.money)}` : "";
  return `${creditsLabel(job.cost.credits)}${worth}`;
}

function placeholderText(job) {
  switch (job.status) {
    case "queued":
      return "Queued";
    case "in_progress":
      return `Rendering · ${job.progress}%`;
    case "failed":
      return job.error?.code ? `Failed · ${job.error.code}` : "Failed";
    case "canceled":
      return "Canceled";
    default:
      return job.result?.expired ? "Deleted (retention)" : "No poster";
  }
}

function placeholder(job) {
  return el("div", { class: `gcard-placeholder ${job.status}` }, el("span", {}, placeholderText(job)));
}

// ───────────────────────────── scrubbing ─────────────────────────────

/**
 * Show the sprite sheet's tile under the pointer in the card's image area: a layer the
 * shape of one tile, fitted inside the area like the poster, whose background is the
 * whole sheet scaled so exactly one tile shows, moved to the tile's column and row.
 */
function attachScrub(card, media, job) {
  const r = job.result || {};
  const layout = r.spritesheet;
  if (!r.spritesheet_url || !layout || !(layout.tiles > 0) || !(layout.columns > 0)) return;
  card.classList.add("scrubbable");
  const layer = el("div", { class: "gcard-scrub", hidden: true, "aria-hidden": "true" });
  const bar = el("div", { class: "gcard-bar", hidden: true, "aria-hidden": "true" });
  media.append(layer, bar);
  const chip = media.querySelector(".gcard-dur");
  const total = chip.textContent;
  let fit = null; // the tile's size on screen, measured when a scrub starts
  let tile = -1;
  let sheet = "idle"; // fetched on the first scrub: loading, ready or failed

  const measure = () => {
    const box = media.getBoundingClientRect();
    const scale = Math.min(box.width / layout.tile_width, box.height / layout.tile_height);
    const w = layout.tile_width * scale;
    const h = layout.tile_height * scale;
    layer.style.width = `${w}px`;
    layer.style.height = `${h}px`;
    layer.style.backgroundImage = cssUrl(r.spritesheet_url);
    layer.style.backgroundSize = `${layout.columns * w}px ${layout.rows * h}px`;
    fit = { w, h };
  };
  const load = () => {
    sheet = "loading";
    const img = new Image();
    img.addEventListener("load", () => {
      sheet = "ready";
      if (tile >= 0) show(tile);
    });
    img.addEventListener("error", () => {
      sheet = "failed"; // expired or blocked: the poster stays, and the card stops scrubbing
      hide();
      card.classList.remove("scrubbable");
    });
    img.src = r.spritesheet_url;
  };
  const show = (index) => {
    if (sheet === "idle") load();
    if (sheet === "failed") return;
    if (!fit) measure();
    tile = Math.max(0, Math.min(layout.tiles - 1, index));
    const col = tile % layout.columns;
    const row = Math.floor(tile / layout.columns);
    layer.style.backgroundPosition = `${-col * fit.w}px ${-row * fit.h}px`;
    bar.style.setProperty("--at", `${((tile + 0.5) / layout.tiles) * 100}%`);
    layer.hidden = sheet !== "ready"; // until then the poster shows through
    bar.hidden = false;
    media.dataset.tile = String(tile);
    chip.textContent = `${((tile + 0.5) * layout.interval_seconds).toFixed(1)} / ${total}`;
  };
  const hide = () => {
    layer.hidden = true;
    bar.hidden = true;
    fit = null;
    tile = -1;
    delete media.dataset.tile;
    chip.textContent = total;
  };

  media.addEventListener("pointermove", (event) => {
    const box = media.getBoundingClientRect();
    if (!box.width) return;
    show(Math.floor(((event.clientX - box.left) / box.width) * layout.tiles));
  });
  media.addEventListener("pointerleave", hide);
  media.addEventListener("pointercancel", hide);
  card.addEventListener("keydown", (event) => {
    if (event.key === "Escape") return hide();
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return undefined;
    event.preventDefault();
    const step = event.key === "ArrowRight" ? 1 : -1;
    return show(tile < 0 ? (step > 0 ? 0 : layout.tiles - 1) : tile + step);
  });
  card.addEventListener("blur", hide);
}

// ───────────────────────────── cards ─────────────────────────────

function card(job, query) {
  const r = job.result || {};
  const total = seconds(jobSeconds(job));
  const media = el("div", { class: "gcard-media" });
  if (r.thumbnail_url) {
    const img = el("img", { class: "gcard-poster", src: r.thumbnail_url, alt: "", loading: "lazy", decoding: "async" });
    // an expired or unreachable poster: say so rather than show a broken image
    img.addEventListener("error", () => img.replaceWith(placeholder({ ...job, status: "completed", result: null })), { once: true });
    media.append(img);
  } else {
    media.append(placeholder(job));
  }
  media.append(el("span", { class: "gcard-dur" }, total));

  const fellBack = job.delivered_by && job.delivered_by !== job.model;
  const created = job.created_at ? new Date(job.created_at * 1000) : null;
  const node = el(
    "a",
    {
      class: "gcard",
      href: `#/videos/${encodeURIComponent(job.id)}${query}`,
      dataset: { job: job.id, status: job.status },
    },
    media,
    el("div", { class: "gcard-body" },
      el("p", { class: "gcard-prompt", title: job.prompt }, job.prompt),
      el("div", { class: "gcard-meta" },
        el("span", { class: `badge ${job.status}` }, STATUS_LABELS[job.status] || job.status),
        el("code", { class: "gcard-model", title: fellBack ? `Requested ${job.model}; a fallback, ${job.delivered_by}, delivered it` : "" },
          job.model, fellBack ? el("span", { class: "fell-back" }, ` → ${job.delivered_by}`) : null)),
      el("div", { class: "gcard-foot" },
        el("span", { class: "gcard-cost" }, costText(job)),
        el("span", { class: "muted", title: created ? created.toISOString() : "" }, created ? relativeTime(created) : "—"))),
  );
  attachScrub(node, media, job);
  return node;
}

// ───────────────────────────── loading ─────────────────────────────

async function fillModels(selected) {
  if (!view.models) {
    try {
      // the builtin models; a synced one joins the list once a video of it is shown
      const body = await api.models({ source: "builtin", limit: 500 });
      view.models = body.data.filter((m) => !m.modality || m.modality === "video");
    } catch {
      view.models = null; // the filter still works with what the address names
    }
  }
  const models = [...(view.models || [])];
  if (selected && !models.some((m) => m.id === selected)) models.push({ id: selected });
  $("gallery-model").replaceChildren(
    el("option", { value: "" }, "all"),
    ...models.map((m) => el("option", { value: m.id, title: m.display_name || "" }, m.id)),
  );
  $("gallery-model").value = selected;
}

/** Offer in the model filter the models of the videos shown (synced ones are not listed). */
function addModelOptions(jobs) {
  const select = $("gallery-model");
  const have = new Set([...select.options].map((o) => o.value));
  for (const id of new Set(jobs.map((job) => job.model))) {
    if (id && !have.has(id)) select.append(el("option", { value: id }, id));
  }
}

function showEmpty() {
  const none = $("gallery-grid").children.length === 0;
  $("gallery-empty").hidden = !none;
  if (!none) return;
  const filtered = Boolean(view.filters.model || view.filters.status);
  $("gallery-empty-title").textContent = filtered ? "No videos match these filters" : "No videos yet";
  $("gallery-empty-text").textContent = filtered
    ? "Choose another model or status, or “all”."
    : "Generate one in the Studio and it appears here.";
}

/** Load the gallery as the address says; `append` loads the next page instead. */
export async function loadGallery(append = false) {
  const gen = ++view.gen;
  if (!append || !view.filters) {
    view.filters = galleryFilters(parseHash().params);
    view.after = null;
    $("gallery-status").value = view.filters.status;
  }
  const { filters } = view;
  const grid = $("gallery-grid");
  $("gallery-messages").replaceChildren();
  grid.classList.add("loading");
  $("gallery-more").disabled = true;
  try {
    const [body] = await Promise.all([
      api.videos({ ...filters, after: append ? view.after : undefined }),
      append ? null : fillModels(filters.model),
    ]);
    if (gen !== view.gen) return;
    const query = galleryQuery(filters);
    addModelOptions(body.data);
    const cards = body.data.map((job) => card(job, query));
    if (append) grid.append(...cards);
    else grid.replaceChildren(...cards);
    view.after = body.last_id || view.after;
    $("gallery-more").hidden = !body.has_more;
    const n = grid.children.length;
    $("gallery-count").textContent = n ? `${n} ${n === 1 ? "video" : "videos"}${body.has_more ? ", more to load" : ""}` : "";
    showEmpty();
  } catch (err) {
    if (gen === view.gen) $("gallery-messages").replaceChildren(explainApiError(err));
  } finally {
    if (gen === view.gen) {
      grid.classList.remove("loading");
      $("gallery-more").disabled = false;
    }
  }
}

function onFilterChange() {
  const filters = { ...view.filters, model: $("gallery-model").value, status: $("gallery-status").value };
  const hash = `#/gallery${galleryQuery(filters)}`;
  if (window.location.hash === hash) loadGallery();
  else window.location.hash = hash; // the router loads it, and the address keeps it
}

export function initGallery() {
  $("gallery-model").addEventListener("change", onFilterChange);
  $("gallery-status").addEventListener("change", onFilterChange);
  $("gallery-refresh").addEventListener("click", () => loadGallery());
  $("gallery-more").addEventListener("click", () => loadGallery(true));
}
