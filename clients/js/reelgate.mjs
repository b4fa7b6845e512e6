/**
 * reelgate.mjs: a small, dependency-free client for the reelgate video gateway.
 *
 * One ES module, built on `fetch` (Node 18+, browsers, Deno, Bun):
 *
 *     import { Reelgate } from "./reelgate.mjs";
 *     const rg = new Reelgate({ baseUrl: "http://127.0.0.1:8000", apiKey: KEY });
 *     const job = await rg.generate(
 *       { model: "local", prompt: "a red fox running through snow", durationSeconds: 4 },
 *       { onProgress: (u) => console.log(u.status, u.progress) },
 *     );
 *     const bytes = await rg.download(job); // ArrayBuffer of the MP4
 *     const poster = await rg.download(job, { variant: "thumbnail", as: "blob" }); // image/webp
 *
 * Jobs are returned exactly as the API sends them (snake_case fields); only the
 * parameters you pass in are camelCase. Every error is a `ReelgateError` carrying
 * the server's `code`, `message` and details (`param`, `allowed`, ...).
 *
 * What it must never do: retry a 4xx, send the API key anywhere but `baseUrl`
 * (video files are fetched from their signed URL without it), or re-send a
 * video submission that the server may already have accepted.
 *
 * @module reelgate
 */

export const VERSION = "0.1.0";

// ---------------------------------------------------------------------------
// Types (JSDoc): the wire objects as GET /v1/videos/{id} and /v1/models send them

/** @typedef {"queued" | "in_progress" | "completed" | "failed" | "canceled"} JobStatus */

/**
 * @typedef {object} JobResult
 * @property {string | null} url  signed, directly downloadable (supports Range)
 * @property {"stored" | "failed" | string | null} mirror_status
 * @property {number | null} duration_seconds
 * @property {number | null} width
 * @property {number | null} height
 * @property {number | null} bytes
 * @property {string | null} content_type
 * @property {string | null} sha256
 * @property {boolean | null} has_audio
 * @property {string | null} [thumbnail_url]  signed link to the poster (WebP), when one was made
 * @property {string | null} [spritesheet_url]  signed link to the sprite sheet (JPEG)
 * @property {SpriteLayout | null} [spritesheet]  where each frame is on the sprite sheet
 */

/**
 * @typedef {object} SpriteLayout  tile `i` (from 0) shows the video at
 *   `(i + 0.5) * interval_seconds`, at column `i % columns`, row `floor(i / columns)`
 * @property {number} columns
 * @property {number} rows
 * @property {number} tiles
 * @property {number} tile_width
 * @property {number} tile_height
 * @property {number} interval_seconds
 */

/** @typedef {"video" | "thumbnail" | "spritesheet"} Variant */

/**
 * @typedef {object} JobAttempt
 * @property {string} model
 * @property {string | null} upstream_id
 * @property {string | null} outcome
 * @property {unknown} error
 * @property {number | null} started_at
 * @property {number | null} ended_at
 */

/**
 * @typedef {object} Job  the video job object (an OpenAI Videos superset)
 * @property {string} id
 * @property {"video"} object
 * @property {string} model
 * @property {JobStatus} status
 * @property {number} progress  0-100, never decreases
 * @property {string} prompt
 * @property {number} created_at  unix seconds
 * @property {number | null} completed_at
 * @property {string} seconds  e.g. "4"
 * @property {string} size  e.g. "1280x720"
 * @property {Record<string, unknown>} params  as the gateway took them: duration_seconds,
 *   resolution, aspect_ratio, negative_prompt, seed, image_url, image, audio, provider_params
 * @property {string[]} fallback
 * @property {string | null} delivered_by  the model that made the video (differs from `model` after a fallback)
 * @property {JobResult | null} result
 * @property {{code: string, message: string} | null} error
 * @property {JobAttempt[]} attempts
 * @property {number | null} units_consumed
 * @property {{credits: string, millicredits: number} | null} cost
 * @property {Record<string, string>} metadata
 */

/**
 * @typedef {object} JobPage
 * @property {"list"} object
 * @property {Job[]} data
 * @property {boolean} has_more
 * @property {string | null} first_id
 * @property {string | null} last_id  pass as `after` for the next page
 */

/**
 * @typedef {"text_to_video" | "image_input" | "audio" | "negative_prompt" | "seed"} Capability
 *   what a model takes beyond a prompt (`text_to_video`: no image needed)
 */

/**
 * @typedef {object} ProviderParam  one input of a synced model's own schema: send it
 *   in `providerParams`
 * @property {string[]} type  JSON Schema types ("string", "integer", "boolean", ...)
 * @property {boolean} required
 * @property {unknown[]} [enum]  the allowed values, when the schema lists them
 * @property {unknown} [default]
 * @property {number} [minimum]
 * @property {number} [maximum]
 * @property {string} [description]
 */

/**
 * @typedef {object} SyncedInfo  where a synced model comes from and how it is mapped
 * @property {"fal" | "replicate" | string} provider
 * @property {string} upstream_id  the provider's id (`fal-ai/veo3.1`, `owner/name[:version]`)
 * @property {string} category  "text-to-video" or "image-to-video"
 * @property {string} schema_hash
 * @property {number} fetched_at  unix seconds
 * @property {"active" | "retired" | string} status
 * @property {{status: "mapped" | "unmappable" | string, problems: string[],
 *   fields: Record<string, string>, image_required: boolean,
 *   override_source: string | null}} mapping  reelgate's fields onto the provider's inputs
 * @property {boolean} priced
 * @property {string | null} price_source
 * @property {{when: Record<string, unknown>, millicredits_per_second: number,
 *   by_resolution: Record<string, number>}[]} [price_by_inputs]  the price for each known
 *   combination of the inputs that move it (empty when none does)
 * @property {Record<string, ProviderParam>} provider_params  the model's own inputs
 */

/**
 * @typedef {object} Model
 * @property {string} id  e.g. "veo-3-1", or a synced "fal:fal-ai/veo3.1", "replicate:owner/name"
 * @property {string} display_name
 * @property {string} provider
 * @property {string} strengths
 * @property {string} notes
 * @property {number} max_duration_seconds
 * @property {{credits_per_second: string, millicredits_per_second: number}} price
 * @property {{resolution: string[], aspect_ratio: string[], duration_seconds: number[],
 *   duration_seconds_by_resolution: Record<string, number[]>, image_input: boolean,
 *   negative_prompt: boolean, seed: boolean}} allowedParams
 * @property {{duration_seconds: number, resolution: string, aspect_ratio: string}} defaults
 * @property {boolean} available  this gateway can run it
 * @property {boolean} usable  and this API key may use it
 * @property {string | null} not_usable_reason
 * @property {boolean} emulated
 * @property {string | null} deprecated  why it is deprecated or retired, if it is
 * @property {"preview" | "ga" | "deprecated" | "retired"} lifecycle  on the route in use
 * @property {string | null} retires_at  ISO day its route stops serving it
 * @property {string | null} successor  the model to move to
 * @property {string | null} route  which route of its provider this gateway uses
 * @property {string | null} upstream_model
 * @property {"builtin" | "synced"} source  reelgate's own catalog, or a provider's synced list
 * @property {boolean} priced  false for a synced model with no known price (refused at submit)
 * @property {Capability[]} capabilities
 * @property {SyncedInfo | null} synced  set for a synced model
 */

/**
 * @typedef {object} ModelQuery  the filters of `models()` and `modelsPage()` (all combine)
 * @property {string | null} [modality]  default "video"
 * @property {string} [search]  words that must all occur in the id, name, provider or upstream model
 * @property {string} [provider]  "fal", "replicate", "veo", ...
 * @property {Capability | Capability[]} [capability]  each must be offered
 * @property {number} [maxDurationGte]  seconds
 * @property {number} [maxDurationLte]
 * @property {number} [priceGte]  millicredits per second (unpriced models never match)
 * @property {number} [priceLte]
 * @property {"builtin" | "synced"} [source]
 * @property {boolean} [priced]  false: the synced models with no price
 * @property {number} [limit]  the page size, 1-500 (the gateway's default: 100)
 * @property {string} [after]  `modelsPage` only: the previous page's `next_cursor`
 */

/**
 * @typedef {object} ModelPage
 * @property {"list"} object
 * @property {Model[]} data
 * @property {boolean} has_more
 * @property {string | null} next_cursor  pass as `after` for the next page
 * @property {number | null} total  the matches across all pages (null from older gateways)
 */

/**
 * @typedef {object} SubmitParams
 * @property {string} model  a model id from `models()`
 * @property {string} prompt
 * @property {string[]} [fallback]  models to try, in order, when the first is out of quota
 * @property {number} [durationSeconds]
 * @property {string} [resolution]  e.g. "720p"
 * @property {string} [aspectRatio]  e.g. "16:9"
 * @property {string | ArrayBuffer | ArrayBufferView | Blob} [image]  base64, a data: URI, or bytes
 * @property {string} [imageUrl]  an http(s) URL the gateway fetches (send `image` or `imageUrl`)
 * @property {string} [negativePrompt]
 * @property {number} [seed]
 * @property {boolean} [audio]  the model's audio switch (models with the "audio" capability)
 * @property {Record<string, unknown>} [providerParams]  a synced model's own inputs
 *   (`model.synced.provider_params`), checked by the gateway against its schema
 * @property {Record<string, string>} [metadata]
 */

/**
 * @typedef {object} ProgressUpdate
 * @property {JobStatus} status
 * @property {number} progress  0-100
 * @property {Job | undefined} job  the latest job object seen
 * @property {string | null} event  the SSE event type (e.g. "video.progress"), null when polled
 * @property {"events" | "poll"} source
 */

/**
 * @typedef {object} WaitOptions
 * @property {(update: ProgressUpdate) => void} [onProgress]  called on each status or progress change
 * @property {number} [timeoutMs]  give up waiting (the job keeps running) with a `WaitTimeoutError`
 * @property {AbortSignal} [signal]  abort waiting; rejects with the signal's reason
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} [baseUrl]  default: $REELGATE_URL, else http://127.0.0.1:8000
 * @property {string} [apiKey]  default: $REELGATE_API_KEY
 * @property {typeof fetch} [fetch]  default: globalThis.fetch
 * @property {number} [maxRetries]  retries after a network error or 5xx (default 3)
 * @property {number} [retryDelayMs]  first backoff step (default 500; doubles, jittered)
 * @property {number} [maxRetryDelayMs]  backoff cap (default 8000)
 * @property {number} [timeoutMs]  per request, until the answer is read (default 60000)
 * @property {boolean} [useEvents]  `wait` streams /events when offered (default true)
 * @property {number} [pollIntervalMs]  first polling interval when polling (default 500)
 * @property {number} [maxPollIntervalMs]  polling backs off to this (default 5000)
 * @property {number} [eventsIdleTimeoutMs]  reconnect an event stream silent this long (default 45000)
 */

/**
 * What `download` can fetch (`GET /v1/videos/{id}/content?variant=`, OpenAI's names),
 * and the file ending each gets when saved (as the Python SDK names them).
 * @type {Readonly<Record<Variant, string>>}
 */
export const VARIANTS = Object.freeze({
  video: ".mp4",
  thumbnail: ".thumbnail.webp",
  spritesheet: ".spritesheet.jpg",
});
/** The job's signed link to each variant, for a browser that hides a redirect's target. */
const VARIANT_FIELDS = Object.freeze({
  video: "url",
  thumbnail: "thumbnail_url",
  spritesheet: "spritesheet_url",
});

const FINAL = new Set(["completed", "failed", "canceled"]);
const FINAL_EVENTS = new Set(["video.completed", "video.failed", "video.canceled"]);
const WAIT_TIMEOUT = Symbol("reelgate.waitTimeout");
const REQUEST_TIMEOUT = Symbol("reelgate.requestTimeout");
const STREAM_IDLE = Symbol("reelgate.streamIdle");
/** Errors that prove the request never left: safe to re-send even a submission. */
const NOT_SENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT"]);

// ---------------------------------------------------------------------------
// Errors
//
//   ReelgateError                  .status .code .message .details .job
//   ├── ConnectionError            no answer: network down, DNS, request timeout
//   ├── InvalidRequestError        400 invalid_parameter, unknown_model, model_unavailable, ...
//   ├── AuthenticationError        401
//   ├── InsufficientCreditsError   402 insufficient_credits (details: balance, hold_needed, shortfall)
//   ├── PermissionDeniedError      403 model_not_allowed, ...
//   ├── NotFoundError              404
//   ├── ConflictError              409 not_cancelable, video_not_ready, ...
//   ├── RateLimitError             429 rate_limited (.retryAfter seconds)
//   ├── ServerError                5xx
//   ├── JobFailedError             a job ended `failed` (code from job.error.code)
//   │   ├── RefusedError           code "refused": reword, never retried on other models
//   │   ├── QuotaError             code "quota": add a fallback model or retry later
//   │   └── JobTimeoutError        code "timeout": the job's server-side deadline passed
//   ├── JobCanceledError           code "canceled": the job was canceled
//   └── WaitTimeoutError           code "wait_timeout": `wait` gave up; the job keeps running

export class ReelgateError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string, details?: Record<string, any>, job?: Job,
   *   retryAfter?: number, cause?: unknown}} [init]
   */
  constructor(message, init = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    /** @type {number | undefined} the HTTP status; undefined when no answer came back */
    this.status = init.status;
    /** @type {string} the server's stable error code (or the client's, see the hierarchy) */
    this.code = init.code ?? "error";
    /** @type {Record<string, any>} everything else the server said: param, allowed, model, ... */
    this.details = init.details ?? {};
    /** @type {Job | undefined} the job, for job outcomes and wait timeouts */
    this.job = init.job;
    /** @type {number | undefined} seconds, from a Retry-After header */
    this.retryAfter = init.retryAfter;
  }

  /** @returns {string | undefined} the request field the error is about */
  get param() {
    return this.details.param;
  }
}

export class ConnectionError extends ReelgateError {}
export class InvalidRequestError extends ReelgateError {}
export class AuthenticationError extends ReelgateError {}
export class InsufficientCreditsError extends ReelgateError {}
export class PermissionDeniedError extends ReelgateError {}
export class NotFoundError extends ReelgateError {}
export class ConflictError extends ReelgateError {}
export class RateLimitError extends ReelgateError {}
export class ServerError extends ReelgateError {}
export class JobFailedError extends ReelgateError {}
export class RefusedError extends JobFailedError {}
export class QuotaError extends JobFailedError {}
export class JobTimeoutError extends JobFailedError {}
export class JobCanceledError extends ReelgateError {}
export class WaitTimeoutError extends ReelgateError {}

/** @type {Map<unknown, typeof ReelgateError>} */
const ERROR_BY_CODE = new Map([
  ["insufficient_credits", InsufficientCreditsError],
  ["rate_limited", RateLimitError],
]);
/** @type {Map<number, typeof ReelgateError>} */
const ERROR_BY_STATUS = new Map([
  [400, InvalidRequestError],
  [401, AuthenticationError],
  [402, InsufficientCreditsError],
  [403, PermissionDeniedError],
  [404, NotFoundError],
  [409, ConflictError],
  [422, InvalidRequestError],
  [429, RateLimitError],
]);
/** @type {Map<unknown, typeof JobFailedError>} */
const JOB_ERROR_BY_CODE = new Map([
  ["refused", RefusedError],
  ["quota", QuotaError],
  ["timeout", JobTimeoutError],
]);

/**
 * The typed error for a job that ended without a video (`failed` or `canceled`).
 * @param {Job} job
 * @returns {ReelgateError}
 */
export function jobError(job) {
  if (job.status === "canceled") {
    return new JobCanceledError(`Video job ${job.id} was canceled.`, { code: "canceled", job });
  }
  const code = job.error?.code ?? "failed";
  const Cls = JOB_ERROR_BY_CODE.get(code) ?? JobFailedError;
  const message = job.error?.message ?? `Video job ${job.id} failed.`;
  return new Cls(message, { code, job, details: { ...job.error } });
}

/** @param {string | null} value @returns {number | undefined} seconds */
function parseRetryAfter(value) {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

/**
 * Turn a non-2xx answer into the typed error, keeping the server's code and details.
 * @param {Response} res
 * @returns {Promise<ReelgateError>}
 */
async function errorFromResponse(res) {
  const text = await res.text().catch(() => "");
  /** @type {any} */
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const err = body && typeof body.error === "object" && body.error ? body.error : {};
  const { code, message, ...details } = err;
  const Cls =
    ERROR_BY_CODE.get(code) ??
    ERROR_BY_STATUS.get(res.status) ??
    (res.status >= 500 ? ServerError : ReelgateError);
  return new Cls(
    typeof message === "string" ? message : `HTTP ${res.status} ${res.statusText}`.trim(),
    {
      status: res.status,
      code: typeof code === "string" ? code : `http_${res.status}`,
      details,
      retryAfter: parseRetryAfter(res.headers.get("retry-after")),
    },
  );
}

/**
 * Read a 2xx body; one that is not what it claims (bad JSON) is the server's
 * fault, not the network's, and is not retried.
 * @template T
 * @param {Response} res
 * @param {(r: Response) => Promise<T>} read
 * @returns {Promise<T>}
 */
async function readBody(res, read) {
  try {
    return await read(res);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    throw new ReelgateError(`The gateway answered ${res.status} with a body that is not JSON.`, {
      status: res.status,
      code: "invalid_response",
      cause: err,
    });
  }
}

// ---------------------------------------------------------------------------
// Small helpers: abortable sleep, linked abort signals, bytes to base64

/**
 * @param {number} ms
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * An AbortController that also aborts (with the same reason) when `parent` does.
 * (AbortSignal.any is not in Node 18.)
 * @param {AbortSignal | undefined} parent
 */
function linkedController(parent) {
  const controller = new AbortController();
  const onAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener("abort", onAbort, { once: true });
  return { controller, release: () => parent?.removeEventListener("abort", onAbort) };
}

/** @param {Uint8Array} bytes */
function base64(bytes) {
  const B = /** @type {any} */ (globalThis).Buffer;
  if (B) return B.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** @param {Uint8Array} b @returns {string} the image type from its magic bytes */
function sniffImageType(b) {
  const starts = (/** @type {number[]} */ sig, at = 0) => sig.every((x, i) => b[at + i] === x);
  if (starts([0x89, 0x50, 0x4e, 0x47])) return "image/png";
  if (starts([0xff, 0xd8, 0xff])) return "image/jpeg";
  if (starts([0x47, 0x49, 0x46, 0x38])) return "image/gif";
  if (starts([0x52, 0x49, 0x46, 0x46]) && starts([0x57, 0x45, 0x42, 0x50], 8)) return "image/webp";
  return "image/png";
}

/**
 * `image` as the API takes it: a base64 string or a data: URI (bytes are encoded here).
 * @param {string | ArrayBuffer | ArrayBufferView | Blob} image
 * @returns {Promise<string>}
 */
async function encodeImage(image) {
  if (typeof image === "string") return image;
  let type;
  if (typeof Blob !== "undefined" && image instanceof Blob) {
    type = image.type || undefined;
    image = await image.arrayBuffer();
  }
  const bytes = ArrayBuffer.isView(image)
    ? new Uint8Array(image.buffer, image.byteOffset, image.byteLength)
    : new Uint8Array(/** @type {ArrayBuffer} */ (image));
  return `data:${type ?? sniffImageType(bytes)};base64,${base64(bytes)}`;
}

/** camelCase parameter names to the API's; anything else is sent as given. */
const PARAM_NAMES = new Map([
  ["durationSeconds", "duration_seconds"],
  ["aspectRatio", "aspect_ratio"],
  ["imageUrl", "image_url"],
  ["negativePrompt", "negative_prompt"],
  ["providerParams", "provider_params"],
]);

/** camelCase filters of GET /v1/models to the API's; anything else is sent as given. */
const MODEL_QUERY_NAMES = new Map([
  ["maxDurationGte", "max_duration_gte"],
  ["maxDurationLte", "max_duration_lte"],
  ["priceGte", "price_gte"],
  ["priceLte", "price_lte"],
]);

/**
 * The query of GET /v1/models: null and "" leave a filter out (undefined: its default);
 * `capability` repeats (a model must have every one).
 * @param {ModelQuery & Record<string, unknown>} filters
 * @returns {Record<string, unknown>}
 */
function modelsQuery(filters) {
  const { limit } = filters;
  if (limit != null && !(Number.isInteger(limit) && Number(limit) >= 1 && Number(limit) <= 500)) {
    throw new InvalidRequestError(`limit must be an integer from 1 to 500, not ${limit}.`, {
      code: "invalid_parameter",
      details: { param: "limit" },
    });
  }
  /** @type {Record<string, unknown>} */
  const query = { modality: "video" };
  for (const [key, value] of Object.entries(filters)) {
    if (value === undefined) continue; // null leaves it out, modality's default too
    const name = MODEL_QUERY_NAMES.get(key) ?? key;
    if (name === "capability") {
      const all = (Array.isArray(value) ? value : [value]).filter((c) => c != null && c !== "");
      query.capability = all.length ? all : undefined;
    } else {
      query[name] = value === "" ? undefined : value;
    }
  }
  return query;
}

/**
 * `/v1/models/{id}`: a model id keeps its `/` and `:` (`fal:fal-ai/veo3.1`,
 * `replicate:owner/name`); each segment is percent-encoded otherwise.
 * @param {string} id
 */
function modelPath(id) {
  if (typeof id !== "string" || !id) throw new TypeError("a model id is required");
  const segments = id.split("/").map((s) => encodeURIComponent(s).replaceAll("%3A", ":"));
  return `/v1/models/${segments.join("/")}`;
}

/**
 * `models({ signal })`, the form from before the filters, still works: a `signal`
 * among the filters is taken as the request's.
 * @param {Record<string, unknown>} query
 * @param {{signal?: AbortSignal}} options
 * @returns {[Record<string, unknown>, {signal?: AbortSignal}]}
 */
function splitSignal(query, options) {
  const { signal, ...filters } = query ?? {};
  if (signal === undefined || options.signal !== undefined) return [filters, options];
  return [filters, { ...options, signal: /** @type {AbortSignal} */ (signal) }];
}

// ---------------------------------------------------------------------------
// Server-Sent Events

/**
 * @typedef {object} SSEMessage
 * @property {string} event  the event type ("message" when the server names none)
 * @property {string} data
 * @property {string} id  the last event id seen on the stream ("" before any)
 * @property {number | undefined} retry  the server's reconnection delay, in ms
 */

/**
 * Parse a text/event-stream body (the WHATWG algorithm: CR, LF or CRLF line ends,
 * comments, multi-line data, ids that persist, `retry`). Cancels the stream when
 * the caller stops early.
 * @param {ReadableStream<Uint8Array>} stream
 * @returns {AsyncGenerator<SSEMessage>}
 */
export async function* readSSE(stream) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let first = true;
  let type = "";
  let data = "";
  let lastId = "";
  /** @type {number | undefined} */
  let retry;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return; // an event without its blank line at EOF is dropped, per the spec
      buffer += decoder.decode(value, { stream: true });
      if (first && buffer.length > 0) {
        if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1);
        first = false;
      }
      // A trailing CR may be the first half of a CRLF: keep it for the next chunk.
      const held = buffer.endsWith("\r") ? "\r" : "";
      const lines = (held ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
      buffer = /** @type {string} */ (lines.pop()) + held;
      for (const line of lines) {
        if (line === "") {
          if (data) yield { event: type || "message", data: data.slice(0, -1), id: lastId, retry };
          type = "";
          data = "";
          continue;
        }
        if (line.startsWith(":")) continue; // comment (keep-alive)
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") type = val;
        else if (field === "data") data += `${val}\n`;
        else if (field === "id" && !val.includes("\0")) lastId = val;
        else if (field === "retry" && /^\d+$/.test(val)) retry = Number(val);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// The client

/**
 * How a request may be re-sent: "safe" (reads, cancel) after any network error or
 * 5xx; "create" (a submission) only when it provably never reached a server that
 * could have made the job (connection refused, DNS) or on 502/503/504 from a proxy
 * or the rate limiter; "never".
 * @typedef {"safe" | "create" | "never"} RetryPolicy
 */

export class Reelgate {
  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    const env = /** @type {any} */ (globalThis).process?.env ?? {};
    // In a page served by the gateway itself (the web studio), its own origin.
    const origin = /** @type {any} */ (globalThis).location?.origin;
    const baseUrl =
      options.baseUrl ??
      env.REELGATE_URL ??
      (/^https?:/.test(origin ?? "") ? origin : "http://127.0.0.1:8000");
    /** @type {string} */
    this.baseUrl = String(baseUrl).replace(/\/+$/, "");
    /** @type {string | undefined} */
    this.apiKey = options.apiKey ?? env.REELGATE_API_KEY;
    /** @type {typeof fetch} */
    this._fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (typeof this._fetch !== "function") {
      throw new TypeError("No fetch available: use Node 18+ or pass options.fetch.");
    }
    this.maxRetries = options.maxRetries ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 500;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 8000;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.useEvents = options.useEvents ?? true;
    this.pollIntervalMs = options.pollIntervalMs ?? 500;
    this.maxPollIntervalMs = options.maxPollIntervalMs ?? 5000;
    this.eventsIdleTimeoutMs = options.eventsIdleTimeoutMs ?? 45_000;
  }

  // -- the API -------------------------------------------------------------

  /**
   * Every model matching the filters, following the pages (`limit` is the page size),
   * with prices, allowedParams, capabilities and whether this key can use each
   * (`usable`). Filters are camelCase (`maxDurationGte`, `priceLte`, ...); a gateway
   * from before them ignores them and answers every model.
   * @param {ModelQuery} [query]
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<Model[]>}
   */
  async models(query = {}, options = {}) {
    const [filters, opts] = splitSignal(/** @type {Record<string, unknown>} */ (query), options);
    /** @type {Model[]} */
    const found = [];
    /** @type {string | undefined} */
    let after;
    for (;;) {
      const page = await this.modelsPage({ ...filters, after }, opts);
      found.push(...page.data);
      if (!page.has_more || !page.next_cursor || page.next_cursor === after) return found;
      after = page.next_cursor;
    }
  }

  /**
   * One page of models (the filters of `models`); `after` is the previous page's
   * `next_cursor`, and `total` counts the matches across all pages. A gateway from
   * before pagination sends one page with every model (`has_more: false`).
   * @param {ModelQuery} [query]
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<ModelPage>}
   */
  async modelsPage(query = {}, options = {}) {
    const [filters, opts] = splitSignal(/** @type {Record<string, unknown>} */ (query), options);
    const body = (await this._json("GET", "/v1/models", { ...opts, query: modelsQuery(filters) })) ?? {};
    const { total, next_cursor: cursor } = body;
    return {
      ...body,
      object: "list",
      data: Array.isArray(body.data) ? body.data : [],
      has_more: Boolean(body.has_more),
      next_cursor: cursor ? String(cursor) : null,
      total: Number.isInteger(total) ? total : null,
    };
  }

  /**
   * One model by id (`GET /v1/models/{id}`); ids such as `fal:fal-ai/veo3.1` are fine
   * as they are. An unknown id rejects with a `NotFoundError` (`unknown_model`).
   * @param {string} id
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<Model>}
   */
  async model(id, options = {}) {
    return this._json("GET", modelPath(id), options);
  }

  /**
   * Submit a video job; answers at once with the queued job (202). `audio` is the
   * model's audio switch (models with the `audio` capability); `providerParams` are a
   * synced model's own inputs (`model.synced.provider_params`), sent as
   * `provider_params`: a hand-written model refuses both (400, `param` says which).
   * @param {SubmitParams & Record<string, unknown>} params  camelCase; other keys are sent as given
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<Job>}
   */
  async submit(params, options = {}) {
    /** @type {Record<string, unknown>} */
    const body = {};
    for (const [key, value] of Object.entries(params ?? {})) {
      if (value === undefined) continue;
      const name = PARAM_NAMES.get(key) ?? key;
      body[name] = name === "image" ? await encodeImage(/** @type {any} */ (value)) : value;
    }
    return this._json("POST", "/v1/videos", { ...options, body, retry: "create" });
  }

  /**
   * @param {string} id
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<Job>}
   */
  async get(id, options = {}) {
    return this._json("GET", `/v1/videos/${encodeURIComponent(id)}`, options);
  }

  /**
   * One page of this key's jobs, newest first; `model` matches the requested or the
   * delivering model.
   * @param {{status?: JobStatus, model?: string, limit?: number, after?: string,
   *   order?: "asc" | "desc"}} [query]
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<JobPage>}
   */
  async list(query = {}, options = {}) {
    return this._json("GET", "/v1/videos", { ...options, query });
  }

  /**
   * Every job matching `query`, fetching pages as you iterate.
   * @param {{status?: JobStatus, model?: string, limit?: number, order?: "asc" | "desc"}} [query]
   * @param {{signal?: AbortSignal}} [options]
   * @returns {AsyncGenerator<Job>}
   */
  async *iterate(query = {}, options = {}) {
    /** @type {string | undefined} */
    let after;
    for (;;) {
      const page = await this.list({ ...query, after }, options);
      yield* page.data;
      if (!page.has_more || !page.last_id) return;
      after = page.last_id;
    }
  }

  /**
   * Cancel a queued or running job. A queued job is `canceled` in the answer; a
   * running one stays `in_progress` until the worker has stopped it upstream.
   * @param {string} id
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<Job>}
   */
  async cancel(id, options = {}) {
    return this._json("POST", `/v1/videos/${encodeURIComponent(id)}/cancel`, options);
  }

  /**
   * Wait until the job is final; resolves with the job whatever its outcome
   * (check `status`, or use `generate`, which rejects for failed jobs). Streams
   * `/v1/videos/{id}/events` when the server offers it (reconnecting with
   * Last-Event-ID), else polls with backoff.
   * @param {string} id
   * @param {WaitOptions} [options]
   * @returns {Promise<Job>}
   */
  async wait(id, options = {}) {
    const { onProgress, timeoutMs, signal } = options;
    const { controller, release } = linkedController(signal);
    const timer =
      timeoutMs == null ? undefined : setTimeout(() => controller.abort(WAIT_TIMEOUT), timeoutMs);
    /** @type {{job?: Job, last?: {status: string, progress: number}}} */
    const seen = {};
    /** @param {ProgressUpdate} update @returns {boolean} whether anything changed */
    const report = (update) => {
      if (update.job) seen.job = update.job;
      const { last } = seen;
      if (last && last.status === update.status && last.progress === update.progress) return false;
      seen.last = { status: update.status, progress: update.progress };
      onProgress?.(update);
      return true;
    };
    try {
      const s = controller.signal;
      const job = this.useEvents ? await this._waitEvents(id, s, report) : null;
      return job ?? (await this._waitPoll(id, s, report));
    } catch (err) {
      if (controller.signal.reason === WAIT_TIMEOUT && controller.signal.aborted) {
        const status = seen.job?.status ?? "unfinished";
        throw new WaitTimeoutError(
          `Video job ${id} is still ${status} after ${timeoutMs} ms of waiting; it keeps ` +
            "running on the gateway: wait again, or cancel it.",
          { code: "wait_timeout", job: seen.job, details: { id, timeout_ms: timeoutMs } },
        );
      }
      throw err;
    } finally {
      clearTimeout(timer);
      release();
    }
  }

  /**
   * Submit, then wait: resolves with the completed job, rejects with a
   * `JobFailedError` (`RefusedError`, `QuotaError`, `JobTimeoutError`) or a
   * `JobCanceledError` when the job ends without a video.
   * @param {SubmitParams & Record<string, unknown>} params
   * @param {WaitOptions} [options]
   * @returns {Promise<Job>}
   */
  async generate(params, options = {}) {
    const job = await this.submit(params, { signal: options.signal });
    const final = await this.wait(job.id, options);
    if (final.status !== "completed") throw jobError(final);
    return final;
  }

  /**
   * A finished video's content: the MP4 (`variant: "video"`, the default), its poster
   * (`"thumbnail"`, WebP) or its sprite sheet (`"spritesheet"`, JPEG; the job's
   * `result.spritesheet` gives the layout). Asks `GET /v1/videos/{id}/content?variant=`
   * (with the API key), then fetches the signed link it redirects to *without* the key.
   * Resolves with the bytes (an ArrayBuffer); `as: "blob"` gives a Blob whose `type` is
   * the content type, `as: "response"` the raw Response to stream.
   * Rejects with an `InvalidRequestError` (`invalid_parameter`) for an unknown variant,
   * before any request, and with a `ConflictError` when there is nothing to download:
   * `video_not_ready` (the job is not completed) or `variant_not_available` (this video
   * has no poster or sprite sheet).
   * @overload
   * @param {string | Job} job
   * @param {{variant?: Variant, as?: "arrayBuffer", signal?: AbortSignal, timeoutMs?: number}} [options]
   * @returns {Promise<ArrayBuffer>}
   */
  /**
   * @overload
   * @param {string | Job} job
   * @param {{variant?: Variant, as: "blob", signal?: AbortSignal, timeoutMs?: number}} options
   * @returns {Promise<Blob>}
   */
  /**
   * @overload
   * @param {string | Job} job
   * @param {{variant?: Variant, as: "response", signal?: AbortSignal, timeoutMs?: number}} options
   * @returns {Promise<Response>}
   */
  /**
   * @param {string | Job} job
   * @param {{variant?: Variant, as?: "arrayBuffer" | "blob" | "response", signal?: AbortSignal,
   *   timeoutMs?: number}} [options]
   * @returns {Promise<ArrayBuffer | Blob | Response>}
   */
  async download(job, options = {}) {
    const { variant = "video", as = "arrayBuffer", signal, timeoutMs = 0 } = options;
    if (!Object.hasOwn(VARIANTS, variant)) {
      const allowed = Object.keys(VARIANTS);
      throw new InvalidRequestError(
        `variant must be one of ${allowed.join(", ")}, not ${JSON.stringify(variant)}.`,
        { code: "invalid_parameter", details: { param: "variant", allowed } },
      );
    }
    if (!["arrayBuffer", "blob", "response"].includes(as)) {
      throw new TypeError(`as must be "arrayBuffer", "blob" or "response", not ${JSON.stringify(as)}.`);
    }
    const id = typeof job === "string" ? job : job.id;
    const content = this._url(
      `/v1/videos/${encodeURIComponent(id)}/content`,
      variant === "video" ? undefined : { variant },
    );
    /** @type {(r: Response) => Promise<ArrayBuffer | Blob>} */
    const readAs = (r) => (as === "blob" ? r.blob() : r.arrayBuffer());
    // The gateway redirects to a signed link (storage, or its own stream route); follow
    // it here rather than let fetch carry the Authorization header along.
    const first = await this._send(
      content,
      { method: "GET", redirect: "manual", signal },
      {
        read: async (r) => {
          if (r.ok) return { response: r, body: as === "response" ? undefined : await readAs(r) };
          await r.body?.cancel();
          return { location: r.type === "opaqueredirect" ? null : r.headers.get("location") };
        },
      },
    );
    if ("response" in first) return first.body ?? first.response; // served by the gateway itself
    let target = first.location;
    if (!target) {
      // A browser hides where a redirect goes: the job carries the same signed link.
      const fresh = await this.get(id, { signal });
      target = fresh.result?.[VARIANT_FIELDS[variant]] ?? null;
      if (!target) {
        throw new ConflictError(`Video job ${id} has no ${variant} to download.`, {
          code: fresh.status === "completed" ? "variant_not_available" : "video_not_ready",
          job: fresh,
          details: { variant, status: fresh.status },
        });
      }
    }
    const url = new URL(target, content).href;
    return this._send(url, { method: "GET", signal }, {
      auth: false,
      timeoutMs,
      read: as === "response" ? undefined : readAs,
    });
  }

  // -- waiting -------------------------------------------------------------

  /**
   * Follow the job's event stream, reconnecting from the last event seen when it
   * breaks off or goes silent. Resolves with the final job, or null when the
   * server has no stream or it keeps breaking without news: the caller then polls.
   * @param {string} id
   * @param {AbortSignal} signal
   * @param {(u: ProgressUpdate) => boolean} report
   * @returns {Promise<Job | null>}
   */
  async _waitEvents(id, signal, report) {
    const url = this._url(`/v1/videos/${encodeURIComponent(id)}/events`);
    const stream = { lastId: "", retryMs: 1000 };
    for (let breaks = 0; breaks <= 3; ) {
      const got = await this._followEvents(url, stream, signal, report);
      if (got === "unsupported") return null;
      if (got.final) {
        const { job } = got.final;
        return job && FINAL.has(job.status) ? job : this.get(id, { signal });
      }
      breaks = got.heard ? 1 : breaks + 1;
      await sleep(Math.min(stream.retryMs, this.maxRetryDelayMs), signal);
    }
    return null;
  }

  /**
   * One connection to the event stream, until it ends, breaks, goes silent for
   * `eventsIdleTimeoutMs` (the server sends keep-alives every 15 s) or brings the
   * final event.
   * @param {string} url
   * @param {{lastId: string, retryMs: number}} stream  carried across reconnects
   * @param {AbortSignal} signal
   * @param {(u: ProgressUpdate) => boolean} report
   * @returns {Promise<"unsupported" | {heard: boolean, final?: {job?: Job}}>}
   */
  async _followEvents(url, stream, signal, report) {
    const { controller, release } = linkedController(signal);
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let idle;
    let closed = false;
    const touch = () => {
      clearTimeout(idle);
      // the pipe may still deliver a chunk after we stopped reading: no timer then
      if (!closed) idle = setTimeout(() => controller.abort(STREAM_IDLE), this.eventsIdleTimeoutMs);
    };
    let heard = false;
    try {
      /** @type {Response} */
      let res;
      try {
        const headers = { Accept: "text/event-stream" };
        if (stream.lastId) Object.assign(headers, { "Last-Event-ID": stream.lastId });
        res = await this._send(url, { method: "GET", headers, signal: controller.signal });
      } catch (err) {
        // No stream here (404/405/501), or it keeps failing (5xx after retries): poll instead.
        const status = err instanceof ReelgateError ? (err.status ?? 0) : 0;
        if ([404, 405, 501].includes(status) || status >= 500) return "unsupported";
        throw err;
      }
      if (!res.body || !(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
        await res.body?.cancel().catch(() => {});
        return "unsupported";
      }
      touch();
      const body = res.body.pipeThrough(
        new TransformStream({
          transform(chunk, out) {
            touch();
            out.enqueue(chunk);
          },
        }),
      );
      try {
        for await (const message of readSSE(body)) {
          if (message.retry !== undefined) stream.retryMs = message.retry;
          stream.lastId = message.id || stream.lastId;
          /** @type {any} */
          let data;
          try {
            data = JSON.parse(message.data);
          } catch {
            continue; // garbled: the next event carries the whole job anyway
          }
          heard = true;
          const job = data.job ?? undefined;
          report({
            status: data.status ?? job?.status,
            progress: data.progress ?? job?.progress,
            job,
            event: message.event,
            source: "events",
          });
          if (FINAL_EVENTS.has(message.event)) return { heard, final: { job } };
        }
      } catch {
        if (signal.aborted) throw signal.reason;
        // broke off or went silent: the caller reconnects from the last event seen
      }
      return { heard };
    } finally {
      closed = true;
      clearTimeout(idle);
      release();
    }
  }

  /**
   * Poll GET /v1/videos/{id}: quickly while the job moves, backing off while it doesn't.
   * @param {string} id
   * @param {AbortSignal} signal
   * @param {(u: ProgressUpdate) => boolean} report
   * @returns {Promise<Job>}
   */
  async _waitPoll(id, signal, report) {
    let delay = this.pollIntervalMs;
    for (;;) {
      /** @type {Job} */
      let job;
      try {
        job = await this.get(id, { signal });
      } catch (err) {
        if (!(err instanceof RateLimitError)) throw err;
        await sleep(Math.max(delay, (err.retryAfter ?? 1) * 1000), signal);
        continue;
      }
      const { status, progress } = job;
      const moved = report({ status, progress, job, event: null, source: "poll" });
      if (FINAL.has(job.status)) return job;
      delay = moved ? this.pollIntervalMs : Math.min(this.maxPollIntervalMs, delay * 1.5);
      await sleep(delay, signal);
    }
  }

  // -- HTTP ----------------------------------------------------------------

  /**
   * @param {string} path
   * @param {Record<string, unknown>} [query]
   */
  _url(path, query) {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      // an array repeats the parameter (`capability=audio&capability=seed`)
      for (const one of Array.isArray(v) ? v : [v]) {
        if (one !== undefined && one !== null) url.searchParams.append(k, String(one));
      }
    }
    return url.href;
  }

  /**
   * A JSON request to the API.
   * @param {string} method
   * @param {string} path
   * @param {{query?: Record<string, unknown>, body?: unknown, signal?: AbortSignal,
   *   retry?: RetryPolicy}} [options]
   * @returns {Promise<any>}
   */
  _json(method, path, options = {}) {
    const { query, body, signal, retry = "safe" } = options;
    /** @type {Record<string, string>} */
    const headers = { Accept: "application/json" };
    /** @type {RequestInit & {headers: Record<string, string>}} */
    const init = { method, headers, signal };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const read = async (/** @type {Response} */ r) => (r.status === 204 ? undefined : r.json());
    return this._send(this._url(path, query), init, { retry, read });
  }

  /** @param {number} attempt @returns {number} ms: exponential, capped, half jittered */
  _backoff(attempt) {
    const cap = Math.min(this.maxRetryDelayMs, this.retryDelayMs * 2 ** attempt);
    return cap / 2 + (Math.random() * cap) / 2;
  }

  /**
   * Send with retries; a non-2xx answer becomes a typed error. With `read`, the
   * per-request timeout covers reading the body too and its result is returned;
   * without, the Response is returned once its headers arrive.
   * @template [T=Response]
   * @param {string} url
   * @param {RequestInit & {headers?: Record<string, string>}} init
   * @param {{retry?: RetryPolicy, auth?: boolean, timeoutMs?: number,
   *   read?: (r: Response) => Promise<T>}} [options]
   * @returns {Promise<T>}
   */
  async _send(url, init, options = {}) {
    const { retry = "safe", auth = true, timeoutMs = this.timeoutMs, read } = options;
    const outer = init.signal ?? undefined;
    /** @type {Record<string, string>} */
    const headers = { ...init.headers };
    if (auth && this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    for (let attempt = 0; ; attempt++) {
      const { controller, release } = linkedController(outer);
      const timer = timeoutMs
        ? setTimeout(() => controller.abort(REQUEST_TIMEOUT), timeoutMs)
        : undefined;
      let streaming = false;
      /** @type {unknown} */
      let failure;
      try {
        const res = await this._fetch(url, { ...init, headers, signal: controller.signal });
        // With redirect: "manual", a 3xx (or a browser's opaque redirect) is the answer.
        const passed =
          res.ok ||
          (init.redirect === "manual" &&
            (res.type === "opaqueredirect" || (res.status >= 300 && res.status < 400)));
        if (passed && !read) {
          // The body is read later: keep `outer` linked so aborting it still ends the stream.
          streaming = true;
          return /** @type {any} */ (res);
        }
        if (passed) return await readBody(res, /** @type {(r: Response) => Promise<T>} */ (read));
        const statusRetry =
          res.status >= 500 &&
          (retry === "safe" || (retry === "create" && [502, 503, 504].includes(res.status)));
        const error = await errorFromResponse(res);
        if (!statusRetry || attempt >= this.maxRetries) throw error;
        failure = error;
      } catch (err) {
        if (outer?.aborted) throw outer.reason;
        if (err instanceof ReelgateError) throw err;
        const timedOut = controller.signal.reason === REQUEST_TIMEOUT;
        const code = /** @type {any} */ (err)?.cause?.code;
        const error = new ConnectionError(
          timedOut
            ? `No answer from ${new URL(url).origin} within ${timeoutMs} ms.`
            : `Could not reach ${new URL(url).origin}: ${/** @type {any} */ (err)?.cause?.message ?? err}.`,
          { code: timedOut ? "request_timeout" : "connection_error", cause: err },
        );
        const mayRetry = retry === "safe" || (retry === "create" && NOT_SENT.has(code));
        if (!mayRetry || attempt >= this.maxRetries) throw error;
        failure = error;
      } finally {
        clearTimeout(timer);
        if (!streaming) release();
      }
      const after = failure instanceof ReelgateError ? failure.retryAfter : undefined;
      const wait = Math.max(this._backoff(attempt), Math.min((after ?? 0) * 1000, 60_000));
      await sleep(wait, outer);
    }
  }
}

export default Reelgate;
