// The studio's only door to reelgate: the public HTTP API, with the key the user
// gave (kept in localStorage). Live progress comes from the SSE events endpoint,
// read with fetch() because EventSource cannot send an Authorization header.

const KEY_STORAGE = "reelgate.apiKey";
export const FINAL = new Set(["completed", "failed", "canceled"]);

export function getKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

/** Move a `?key=…` from the address bar into localStorage and drop it from the URL. */
export function adoptKeyFromUrl() {
  const url = new URL(window.location.href);
  const key = url.searchParams.get("key");
  if (key === null) return false;
  if (key.trim()) setKey(key.trim());
  url.searchParams.delete("key");
  window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  return true;
}

/** An error answer: `{"error": {"code", "message", ...details}}`. */
export class ApiError extends Error {
  constructor(status, body, headers) {
    const err = (body && body.error) || {};
    super(err.message || `The gateway answered HTTP ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.code = err.code || "http_error";
    this.details = err;
    this.retryAfter = headers ? headers.get("Retry-After") : null;
  }
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function readJson(resp) {
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export async function request(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const data = await readJson(resp);
  if (!resp.ok) throw new ApiError(resp.status, data, resp.headers);
  return data;
}

const jobPath = (id) => `/v1/videos/${encodeURIComponent(id)}`;
const storyboardPath = (id) => `/v1/storyboards/${encodeURIComponent(id)}`;

/** The query of GET /v1/models: a list value (capability) repeats its name. */
function modelsQuery(query = {}) {
  const q = new URLSearchParams({ modality: "video" });
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) q.append(name, String(v));
  }
  return q;
}

// a model id may hold ":" and "/" (fal:fal-ai/kling-video/v2.6/pro/image-to-video)
const modelPath = (id) => `/v1/models/${String(id).split("/").map(encodeURIComponent).join("/")}`;

export const api = {
  /** One page of the catalog: {data, has_more, next_cursor, total}. `query` takes the
   * filters of GET /v1/models (search, provider, capability: [...], source, priced,
   * limit, after...); none: the first page of every video model. */
  models: (query, signal) => request(`/v1/models?${modelsQuery(query)}`, { signal }),
  model: (id, signal) => request(modelPath(id), { signal }),
  submit: (body) => request("/v1/videos", { method: "POST", body }),
  job: (id, signal) => request(jobPath(id), { signal }),
  cancel: (id) => request(`${jobPath(id)}/cancel`, { method: "POST" }),
  balance: () => request("/v1/balance"),
  recent: ({ limit = 25, after, status } = {}) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (after) q.set("after", after);
    if (status) q.set("status", status);
    return request(`/v1/usage/recent?${q}`);
  },
  /** One page of the account's videos, newest first: {data, has_more, last_id}. */
  videos: ({ limit = 24, after, status, model } = {}) => {
    const q = new URLSearchParams({ limit: String(limit), order: "desc" });
    if (after) q.set("after", after);
    if (status) q.set("status", status);
    if (model) q.set("model", model);
    return request(`/v1/videos?${q}`);
  },
  /** Storyboards: shots made as jobs and joined into one video. */
  createStoryboard: (body) => request("/v1/storyboards", { method: "POST", body }),
  storyboard: (id, signal) => request(storyboardPath(id), { signal }),
  storyboards: ({ limit = 10, after } = {}) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (after) q.set("after", after);
    return request(`/v1/storyboards?${q}`);
  },
  /** Make shot `n` (from 1) of a failed storyboard again; `change` holds the fields to change. */
  retryShot: (id, n, change) =>
    request(`${storyboardPath(id)}/shots/${encodeURIComponent(n)}/retry`, {
      method: "POST",
      body: change && Object.keys(change).length ? change : undefined,
    }),
  cancelStoryboard: (id) => request(`${storyboardPath(id)}/cancel`, { method: "POST" }),
  charts: (days) => request(`/v1/usage/charts?days=${encodeURIComponent(days)}`),
  exportCsv: async (start, end) => {
    const q = new URLSearchParams({ start, end });
    const resp = await fetch(`/v1/usage/export.csv?${q}`, { headers: headers({ Accept: "text/csv" }) });
    if (!resp.ok) throw new ApiError(resp.status, await readJson(resp), resp.headers);
    return resp.blob();
  },
};

/**
 * Parse a text/event-stream body into `{id, event, data}` messages, following the
 * WHATWG rules that matter here: comments, multi-line data, CR/LF/CRLF endings.
 */
export async function* readEventStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  let type = "";
  let lastId = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // a trailing CR may be the first half of a CRLF split across chunks
      const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, cut).split(/\r\n|\r|\n/);
      buffer = lines.pop() + buffer.slice(cut);
      for (const line of lines) {
        if (line === "") {
          if (data.length) yield { id: lastId, event: type || "message", data: data.join("\n") };
          data = [];
          type = "";
          continue;
        }
        if (line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let val = colon === -1 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") data.push(val);
        else if (field === "event") type = val;
        else if (field === "id" && !val.includes("\0")) lastId = val;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });

/** Poll GET /v1/videos/{id} every second until the job is final. */
async function pollJob(id, onUpdate, signal) {
  let misses = 0;
  for (;;) {
    let job;
    try {
      job = await api.job(id, signal);
      misses = 0;
    } catch (err) {
      if (signal?.aborted || err instanceof ApiError || ++misses > 10) throw err;
      await sleep(1000, signal);
      continue;
    }
    onUpdate({ status: job.status, progress: job.progress, job, via: "polling" });
    if (FINAL.has(job.status)) return job;
    await sleep(1000, signal);
  }
}

/**
 * Poll GET /v1/storyboards/{id} once a second, calling `onUpdate(storyboard)`, until
 * `settled(storyboard)`; returns that last answer. A dropped connection is retried
 * (up to ten times in a row); an error answer ends the follow.
 */
export async function followStoryboard(id, onUpdate, signal, settled) {
  let misses = 0;
  for (;;) {
    let sb;
    try {
      sb = await api.storyboard(id, signal);
      misses = 0;
    } catch (err) {
      if (signal?.aborted || err instanceof ApiError || ++misses > 10) throw err;
      await sleep(1000, signal);
      continue;
    }
    if (signal?.aborted) throw signal.reason;
    onUpdate(sb);
    if (settled(sb)) return sb;
    await sleep(1000, signal);
  }
}

/**
 * Follow a job until it is final, calling `onUpdate({status, progress, job, via})`.
 * Streams the events endpoint (resuming with Last-Event-ID after a dropped
 * connection); polls when the gateway has no events endpoint (404) or the
 * stream keeps failing.
 */
export async function followJob(id, onUpdate, signal) {
  let lastEventId = null;
  let drops = 0;
  while (drops < 4) {
    let resp = null;
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (lastEventId) h["Last-Event-ID"] = lastEventId;
      resp = await fetch(`${jobPath(id)}/events`, { headers: h, signal, cache: "no-store" });
    } catch (err) {
      if (signal?.aborted) throw err;
    }
    if (resp && resp.status === 404) return pollJob(id, onUpdate, signal);
    if (resp && (resp.status === 401 || resp.status === 403)) {
      throw new ApiError(resp.status, await readJson(resp), resp.headers);
    }
    if (resp && resp.ok && resp.body) {
      try {
        for await (const msg of readEventStream(resp.body)) {
          if (msg.id) lastEventId = msg.id;
          let ev;
          try {
            ev = JSON.parse(msg.data);
          } catch {
            continue;
          }
          const job = ev.job || null;
          onUpdate({ status: ev.status, progress: ev.progress, job, via: "events" });
          if (FINAL.has(ev.status)) return job || (await api.job(id, signal));
        }
      } catch (err) {
        if (signal?.aborted) throw err;
      }
    }
    drops += 1;
    await sleep(1000, signal);
  }
  return pollJob(id, onUpdate, signal);
}
