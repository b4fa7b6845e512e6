// Unit tests: the client against a scripted fake fetch (no gateway needed).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  AuthenticationError,
  ConflictError,
  ConnectionError,
  InsufficientCreditsError,
  InvalidRequestError,
  JobCanceledError,
  NotFoundError,
  QuotaError,
  Reelgate,
  RefusedError,
  ServerError,
  VARIANTS,
  WaitTimeoutError,
  readSSE,
} from "../reelgate.mjs";

const KEY = "rg_unit_test_key";

/** A queued/in-progress/completed job object as the API sends it. */
function job(status, progress, extra = {}) {
  return {
    id: "video_1",
    object: "video",
    model: "local",
    status,
    progress,
    result: status === "completed" ? { url: "https://files.example/v.mp4?sig=1" } : null,
    error: null,
    ...extra,
  };
}

function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** The gateway's answer to GET /v1/videos/{id}/content: a redirect to a signed link. */
function redirect(location) {
  return new Response(null, { status: 302, headers: { location } });
}

const MP4_HEAD = new Uint8Array([0, 0, 0, 24, 0x66, 0x74, 0x79, 0x70]);

function apiError(status, code, message, details = {}) {
  return json(status, { error: { code, message, ...details } });
}

/** A fake fetch that answers from a script, one entry per call, and records the calls. */
function scripted(...answers) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    calls.push({ url: String(url), method: init.method ?? "GET", headers: init.headers ?? {} });
    const next = answers.shift();
    if (next === undefined) throw new Error(`unexpected request ${init.method} ${url}`);
    return typeof next === "function" ? next(String(url), init) : next;
  };
  return { fetch, calls };
}

function client(fetch, options = {}) {
  return new Reelgate({
    baseUrl: "http://gw.test/",
    apiKey: KEY,
    fetch,
    retryDelayMs: 1,
    maxRetryDelayMs: 5,
    pollIntervalMs: 1,
    maxPollIntervalMs: 5,
    ...options,
  });
}

/** A text/event-stream Response whose body arrives in the given chunks. */
function sse(...chunks) {
  const enc = new TextEncoder();
  const body = new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(enc.encode(chunk));
      controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}

function event(seq, type, status, progress, jobObj = job(status, progress)) {
  const data = JSON.stringify({ seq, type, status, progress, created_at: 1, job: jobObj });
  return `id: ${seq}\nevent: ${type}\ndata: ${data}\n\n`;
}

describe("retries", () => {
  test("a 503 is retried and the next answer is returned", async () => {
    const { fetch, calls } = scripted(
      apiError(503, "rate_limiter_unavailable", "try again"),
      json(200, job("queued", 0)),
    );
    const got = await client(fetch).get("video_1");
    assert.equal(got.id, "video_1");
    assert.equal(calls.length, 2);
    assert.equal(calls[1].url, "http://gw.test/v1/videos/video_1");
    assert.equal(calls[1].headers.Authorization, `Bearer ${KEY}`);
  });

  test("a submission is retried after a 503 too (the gateway made no job)", async () => {
    const { fetch, calls } = scripted(
      apiError(503, "rate_limiter_unavailable", "try again"),
      json(202, job("queued", 0)),
    );
    const got = await client(fetch).submit({ model: "local", prompt: "fox" });
    assert.equal(got.status, "queued");
    assert.equal(calls.length, 2);
  });

  test("a 400 is never retried and carries code, param and allowed", async () => {
    const { fetch, calls } = scripted(
      apiError(400, "invalid_parameter", "resolution '999p' is not offered", {
        param: "resolution",
        allowed: ["360p", "720p"],
        model: "local",
      }),
    );
    const err = await client(fetch)
      .submit({ model: "local", prompt: "fox", resolution: "999p" })
      .catch((e) => e);
    assert.ok(err instanceof InvalidRequestError);
    assert.equal(err.status, 400);
    assert.equal(err.code, "invalid_parameter");
    assert.equal(err.param, "resolution");
    assert.deepEqual(err.details.allowed, ["360p", "720p"]);
    assert.match(err.message, /999p/);
    assert.equal(calls.length, 1);
  });

  test("401, 402 and 429 are never retried either", async () => {
    for (const [answer, Cls] of [
      [apiError(401, "invalid_api_key", "bad key"), AuthenticationError],
      [apiError(402, "insufficient_credits", "top up", { shortfall: "3.000" }), InsufficientCreditsError],
      [apiError(429, "rate_limited", "slow down"), Error],
    ]) {
      const { fetch, calls } = scripted(answer);
      const err = await client(fetch).get("video_1").catch((e) => e);
      assert.ok(err instanceof Cls, err);
      assert.equal(calls.length, 1);
    }
  });

  test("a 5xx on a read is retried maxRetries times, then thrown as ServerError", async () => {
    const answers = Array.from({ length: 3 }, () => apiError(500, "internal_error", "boom"));
    const { fetch, calls } = scripted(...answers);
    const err = await client(fetch, { maxRetries: 2 }).get("video_1").catch((e) => e);
    assert.ok(err instanceof ServerError);
    assert.equal(err.code, "internal_error");
    assert.equal(calls.length, 3);
  });

  test("a 500 to a submission is not retried: the job may exist", async () => {
    const { fetch, calls } = scripted(apiError(500, "internal_error", "boom"));
    const err = await client(fetch).submit({ model: "local", prompt: "fox" }).catch((e) => e);
    assert.ok(err instanceof ServerError);
    assert.equal(calls.length, 1);
  });

  test("network errors: reads retry; a submission retries only if nothing was sent", async () => {
    const refused = () => {
      throw new TypeError("fetch failed", { cause: { code: "ECONNREFUSED", message: "refused" } });
    };
    const reset = () => {
      throw new TypeError("fetch failed", { cause: { code: "ECONNRESET", message: "reset" } });
    };
    let s = scripted(reset, json(200, job("queued", 0)));
    assert.equal((await client(s.fetch).get("video_1")).id, "video_1");
    assert.equal(s.calls.length, 2);

    s = scripted(refused, json(202, job("queued", 0)));
    assert.equal((await client(s.fetch).submit({ model: "local", prompt: "x" })).id, "video_1");
    assert.equal(s.calls.length, 2);

    s = scripted(reset);
    const err = await client(s.fetch).submit({ model: "local", prompt: "x" }).catch((e) => e);
    assert.ok(err instanceof ConnectionError);
    assert.equal(err.code, "connection_error");
    assert.equal(err.status, undefined);
    assert.equal(s.calls.length, 1);
  });
});

describe("requests", () => {
  test("submit maps camelCase to the API's names and encodes image bytes", async () => {
    let body;
    const { fetch } = scripted((_url, init) => {
      body = JSON.parse(init.body);
      return json(202, job("queued", 0));
    });
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    await client(fetch).submit({
      model: "local",
      prompt: "fox",
      fallback: ["sora-2"],
      durationSeconds: 4,
      aspectRatio: "16:9",
      negativePrompt: "blur",
      image: png,
      seed: 7,
      metadata: { run: "1" },
      resolution: undefined,
    });
    assert.deepEqual(body, {
      model: "local",
      prompt: "fox",
      fallback: ["sora-2"],
      duration_seconds: 4,
      aspect_ratio: "16:9",
      negative_prompt: "blur",
      image: `data:image/png;base64,${Buffer.from(png).toString("base64")}`,
      seed: 7,
      metadata: { run: "1" },
    });
  });

  test("download asks /content with the key, then fetches the signed URL without it", async () => {
    const { fetch, calls } = scripted(
      (url, init) => {
        assert.equal(init.redirect, "manual", "the client follows the redirect itself");
        return redirect("https://files.example/v.mp4?sig=1");
      },
      new Response(MP4_HEAD, { headers: { "content-type": "video/mp4" } }),
    );
    const bytes = await client(fetch).download("video_1");
    assert.ok(bytes instanceof ArrayBuffer);
    assert.equal(new TextDecoder().decode(new Uint8Array(bytes).subarray(4, 8)), "ftyp");
    assert.equal(calls[0].url, "http://gw.test/v1/videos/video_1/content");
    assert.equal(calls[0].headers.Authorization, `Bearer ${KEY}`);
    assert.equal(calls[1].url, "https://files.example/v.mp4?sig=1");
    assert.equal(calls[1].headers.Authorization, undefined);
  });

  test("download by variant: the poster and the sprite sheet, as a Blob with its type", async () => {
    for (const [variant, type, file] of [
      ["thumbnail", "image/webp", "poster.webp"],
      ["spritesheet", "image/jpeg", "sprite.jpg"],
    ]) {
      const { fetch, calls } = scripted(
        redirect(`/files/previews/video_1/${file}?sig=2`), // relative: on the gateway itself
        new Response(new Uint8Array([1, 2, 3]), { headers: { "content-type": type } }),
      );
      const blob = await client(fetch).download(job("completed", 100), { variant, as: "blob" });
      assert.ok(blob instanceof Blob);
      assert.equal(blob.type, type);
      assert.deepEqual([...new Uint8Array(await blob.arrayBuffer())], [1, 2, 3]);
      assert.equal(calls[0].url, `http://gw.test/v1/videos/video_1/content?variant=${variant}`);
      assert.equal(calls[1].url, `http://gw.test/files/previews/video_1/${file}?sig=2`);
      assert.equal(calls[1].headers.Authorization, undefined, "a signed link is its own credential");
    }
    assert.deepEqual(Object.keys(VARIANTS), ["video", "thumbnail", "spritesheet"]);
  });

  test("download of an unknown variant fails before any request", async () => {
    const { fetch, calls } = scripted();
    const err = await client(fetch).download("video_1", { variant: "poster" }).catch((e) => e);
    assert.ok(err instanceof InvalidRequestError, err);
    assert.equal(err.code, "invalid_parameter");
    assert.equal(err.param, "variant");
    assert.deepEqual(err.details.allowed, ["video", "thumbnail", "spritesheet"]);
    assert.match(err.message, /variant must be one of video, thumbnail, spritesheet, not "poster"/);
    assert.equal(calls.length, 0);
  });

  test("download of a variant the video lacks is the gateway's 409 variant_not_available", async () => {
    const message =
      "Video job video_1 has no spritesheet: its copy into storage was made without one " +
      "(before previews existed, or they failed). The video itself is available (variant=video).";
    const { fetch, calls } = scripted(
      apiError(409, "variant_not_available", message, { variant: "spritesheet" }),
    );
    const err = await client(fetch).download("video_1", { variant: "spritesheet" }).catch((e) => e);
    assert.ok(err instanceof ConflictError, err);
    assert.equal(err.status, 409);
    assert.equal(err.code, "variant_not_available");
    assert.equal(err.details.variant, "spritesheet");
    assert.equal(err.message, message);
    assert.equal(calls.length, 1, "a 4xx is never retried");
  });

  test("download in a browser, where a redirect's target is hidden, uses the job's link", async () => {
    // fetch(..., {redirect: "manual"}) in a browser answers an opaque redirect: status 0,
    // no Location. The job carries the same signed links.
    const opaque = { ok: false, status: 0, type: "opaqueredirect", headers: new Headers(), body: null };
    const done = job("completed", 100, {
      result: { url: "https://files.example/v.mp4?sig=1", thumbnail_url: "https://files.example/p.webp?sig=3" },
    });
    const { fetch, calls } = scripted(
      opaque,
      json(200, done),
      new Response(new Uint8Array([9]), { headers: { "content-type": "image/webp" } }),
    );
    const res = await client(fetch).download("video_1", { variant: "thumbnail", as: "response" });
    assert.equal(res.headers.get("content-type"), "image/webp");
    assert.deepEqual(
      calls.map((c) => [c.url, c.headers.Authorization]),
      [
        ["http://gw.test/v1/videos/video_1/content?variant=thumbnail", `Bearer ${KEY}`],
        ["http://gw.test/v1/videos/video_1", `Bearer ${KEY}`],
        ["https://files.example/p.webp?sig=3", undefined],
      ],
    );
  });
});

describe("models", () => {
  const model = (id) => ({ id, object: "model", source: "builtin", capabilities: ["seed"] });
  const page = (ids, cursor, total = 5) => ({
    object: "list",
    data: ids.map(model),
    has_more: cursor !== null,
    next_cursor: cursor,
    total,
  });

  test("models() sends camelCase filters as the API's, repeats capability and follows cursors", async () => {
    const { fetch, calls } = scripted(
      json(200, page(["a", "b"], "Yg")),
      json(200, page(["c", "d"], "ZA")),
      json(200, page(["e"], null)),
    );
    const models = await client(fetch).models({
      search: "kling pro",
      provider: "fal",
      capability: ["image_input", "audio"],
      maxDurationGte: 5,
      maxDurationLte: 10,
      priceGte: 0,
      priceLte: 400,
      source: "synced",
      priced: false,
      limit: 2,
    });
    assert.deepEqual(models.map((m) => m.id), ["a", "b", "c", "d", "e"]);
    const queries = calls.map((c) => new URL(c.url));
    assert.ok(queries.every((u) => u.pathname === "/v1/models"));
    const first = queries[0].searchParams;
    assert.equal(first.get("modality"), "video");
    assert.equal(first.get("search"), "kling pro");
    assert.equal(first.get("provider"), "fal");
    assert.deepEqual(first.getAll("capability"), ["image_input", "audio"]);
    assert.equal(first.get("max_duration_gte"), "5");
    assert.equal(first.get("max_duration_lte"), "10");
    assert.equal(first.get("price_gte"), "0");
    assert.equal(first.get("price_lte"), "400");
    assert.equal(first.get("source"), "synced");
    assert.equal(first.get("priced"), "false");
    assert.equal(first.get("limit"), "2");
    assert.equal(first.has("after"), false);
    assert.deepEqual(queries.map((u) => u.searchParams.get("after")), [null, "Yg", "ZA"]);
    for (const u of queries.slice(1)) {
      assert.deepEqual(u.searchParams.getAll("capability"), ["image_input", "audio"]);
    }
  });

  test("models() stops on a page without a cursor, or one that repeats it", async () => {
    // a gateway from before pagination: only data
    let { fetch, calls } = scripted(json(200, { object: "list", data: [model("a"), model("b")] }));
    assert.deepEqual((await client(fetch).models()).map((m) => m.id), ["a", "b"]);
    assert.equal(calls.length, 1);
    assert.equal(new URL(calls[0].url).search, "?modality=video");
    ({ fetch, calls } = scripted(json(200, page(["a"], "YQ")), json(200, page(["b"], "YQ"))));
    assert.deepEqual((await client(fetch).models({ capability: "seed" })).map((m) => m.id), ["a", "b"]);
    assert.equal(calls.length, 2, "the same cursor twice ends the walk");
    assert.deepEqual(new URL(calls[0].url).searchParams.getAll("capability"), ["seed"]);
  });

  test("modelsPage() gives one page, normalised; models({ signal }) still works", async () => {
    let { fetch, calls } = scripted(json(200, { object: "list", data: [model("a")] }));
    assert.deepEqual(await client(fetch).modelsPage({ after: "YQ", modality: null }), {
      object: "list",
      data: [model("a")],
      has_more: false,
      next_cursor: null,
      total: null,
    });
    assert.equal(new URL(calls[0].url).search, "?after=YQ");
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    ({ fetch } = scripted());
    const err = await client(fetch).models({ signal: controller.signal }).catch((e) => e);
    assert.equal(err.message, "stop");
  });

  test("a limit outside 1-500 fails before any request", async () => {
    const { fetch, calls } = scripted();
    for (const limit of [0, 501, 2.5]) {
      const err = await client(fetch).models({ limit }).catch((e) => e);
      assert.ok(err instanceof InvalidRequestError, err);
      assert.equal(err.code, "invalid_parameter");
      assert.equal(err.param, "limit");
    }
    assert.equal(calls.length, 0);
  });

  test("model(id) keeps ':' and '/' of a synced id, encodes the rest per segment", async () => {
    const { fetch, calls } = scripted(
      json(200, model("fal:fal-ai/veo3.1")),
      json(200, model("veo (Audio)")),
      json(200, model("replicate:owner/name")),
      apiError(404, "unknown_model", "No model 'x?y#z'.", { param: "model_id" }),
    );
    const rg = client(fetch);
    assert.equal((await rg.model("fal:fal-ai/veo3.1")).id, "fal:fal-ai/veo3.1");
    await rg.model("veo (Audio)");
    await rg.model("replicate:owner/name");
    const err = await rg.model("x?y#z").catch((e) => e);
    assert.ok(err instanceof NotFoundError, err);
    assert.equal(err.code, "unknown_model");
    assert.deepEqual(
      calls.map((c) => c.url),
      [
        "http://gw.test/v1/models/fal:fal-ai/veo3.1",
        "http://gw.test/v1/models/veo%20(Audio)",
        "http://gw.test/v1/models/replicate:owner/name",
        "http://gw.test/v1/models/x%3Fy%23z",
      ],
    );
    await assert.rejects(rg.model(""), TypeError);
  });

  test("submit sends audio and providerParams as provider_params", async () => {
    let body;
    const { fetch } = scripted((_url, init) => {
      body = JSON.parse(init.body);
      return json(202, job("queued", 0));
    });
    await client(fetch).submit({
      model: "fal:fal-ai/kling-video/v2.1/standard/image-to-video",
      prompt: "a paper boat",
      imageUrl: "https://example.com/boat.png",
      audio: false,
      providerParams: { cfg_scale: 0.7, mode: "pro" },
    });
    assert.deepEqual(body, {
      model: "fal:fal-ai/kling-video/v2.1/standard/image-to-video",
      prompt: "a paper boat",
      image_url: "https://example.com/boat.png",
      audio: false,
      provider_params: { cfg_scale: 0.7, mode: "pro" },
    });
  });
});

describe("readSSE", () => {
  test("parses events split anywhere, CRLF, comments, multi-line data and ids", async () => {
    const text =
      "retry: 2000\r\n\r\n: keep-alive\r\n\r\nid: 1\r\nevent: video.queued\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n" +
      "data:no-space\n\nid: 7\nevent: video.completed\ndata: done\n\nevent: x\ndata: cut";
    // every split point, including between \r and \n
    for (let cut = 1; cut < text.length; cut += 3) {
      const got = [];
      for await (const m of readSSE(sse(text.slice(0, cut), text.slice(cut)).body)) got.push(m);
      assert.deepEqual(
        got.map((m) => [m.event, m.data, m.id, m.retry]),
        [
          ["video.queued", '{"a":\n1}', "1", 2000],
          ["message", "no-space", "1", 2000],
          ["video.completed", "done", "7", 2000],
        ],
        `split at ${cut}`,
      );
    }
  });
});

describe("wait", () => {
  test("streams events to onProgress and resolves with the final job", async () => {
    const done = job("completed", 100);
    const { fetch, calls } = scripted(
      sse(
        "retry: 1\n\n",
        event(1, "video.queued", "queued", 0),
        ": keep-alive\n\n",
        event(2, "video.in_progress", "in_progress", 1),
        event(3, "video.progress", "in_progress", 50),
        event(4, "video.completed", "completed", 100, done),
      ),
    );
    const seen = [];
    const got = await client(fetch).wait("video_1", { onProgress: (u) => seen.push(u) });
    assert.deepEqual(got, done);
    assert.deepEqual(
      seen.map((u) => [u.event, u.status, u.progress, u.source]),
      [
        ["video.queued", "queued", 0, "events"],
        ["video.in_progress", "in_progress", 1, "events"],
        ["video.progress", "in_progress", 50, "events"],
        ["video.completed", "completed", 100, "events"],
      ],
    );
    assert.equal(calls[0].headers.Accept, "text/event-stream");
  });

  test("reconnects with Last-Event-ID when the stream breaks off", async () => {
    const { fetch, calls } = scripted(
      sse("retry: 1\n\n", event(1, "video.queued", "queued", 0), event(2, "video.progress", "queued", 3)),
      sse(event(3, "video.completed", "completed", 100)),
    );
    const got = await client(fetch).wait("video_1");
    assert.equal(got.status, "completed");
    assert.equal(calls.length, 2);
    assert.equal(calls[0].headers["Last-Event-ID"], undefined);
    assert.equal(calls[1].headers["Last-Event-ID"], "2");
  });

  test("reconnects when the stream goes silent past eventsIdleTimeoutMs", async () => {
    const silentAfterOne = (_url, init) => {
      const body = new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(`retry: 1\n\n${event(1, "video.queued", "queued", 0)}`));
          init.signal.addEventListener("abort", () => c.error(init.signal.reason));
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    };
    const { fetch, calls } = scripted(silentAfterOne, sse(event(2, "video.completed", "completed", 100)));
    const got = await client(fetch, { eventsIdleTimeoutMs: 30 }).wait("video_1");
    assert.equal(got.status, "completed");
    assert.equal(calls[1].headers["Last-Event-ID"], "1");
  });

  test("falls back to polling when the events endpoint answers 404", async () => {
    const { fetch, calls } = scripted(
      apiError(404, "not_found", "No such route."),
      json(200, job("queued", 0)),
      json(200, job("queued", 0)),
      json(200, job("in_progress", 40)),
      json(200, job("completed", 100)),
    );
    const seen = [];
    const got = await client(fetch).wait("video_1", { onProgress: (u) => seen.push(u) });
    assert.equal(got.status, "completed");
    assert.deepEqual(
      seen.map((u) => [u.status, u.progress, u.source]),
      [
        ["queued", 0, "poll"],
        ["in_progress", 40, "poll"],
        ["completed", 100, "poll"],
      ],
      "each change reported once",
    );
    assert.equal(calls.length, 5);
    assert.ok(calls.slice(1).every((c) => c.url === "http://gw.test/v1/videos/video_1"));
  });

  test("falls back to polling when the events endpoint keeps failing with 5xx", async () => {
    const { fetch, calls } = scripted(
      apiError(502, "bad_gateway", "proxy"),
      apiError(502, "bad_gateway", "proxy"),
      json(200, job("completed", 100)),
    );
    const got = await client(fetch, { maxRetries: 1 }).wait("video_1");
    assert.equal(got.status, "completed");
    assert.deepEqual(
      calls.map((c) => c.url.replace("http://gw.test/v1/videos/video_1", "")),
      ["/events", "/events", ""],
    );
  });

  test("timeoutMs rejects with WaitTimeoutError carrying the last job seen", async () => {
    const fetch = async (url) =>
      String(url).endsWith("/events")
        ? apiError(404, "not_found", "No such route.")
        : json(200, job("queued", 0));
    const err = await client(fetch).wait("video_1", { timeoutMs: 30 }).catch((e) => e);
    assert.ok(err instanceof WaitTimeoutError, err);
    assert.equal(err.code, "wait_timeout");
    assert.equal(err.job.status, "queued");
  });

  test("an aborted signal rejects with its reason, also mid-stream", async () => {
    const fetch = async (_url, init) => {
      const body = new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(event(1, "video.queued", "queued", 0)));
          // as fetch does: aborting the request's signal errors its body
          init.signal.addEventListener("abort", () => c.error(init.signal.reason));
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    };
    const ctl = new AbortController();
    const reason = new Error("user gave up");
    const pending = client(fetch).wait("video_1", {
      signal: ctl.signal,
      onProgress: () => setTimeout(() => ctl.abort(reason), 5),
    });
    await assert.rejects(pending, (e) => e === reason);
  });
});

describe("generate", () => {
  const failing = (status, error) => {
    const final = job(status, 100, { error });
    return scripted(json(202, job("queued", 0)), sse(event(1, `video.${status}`, status, 100, final)));
  };

  test("rejects with RefusedError for a refused job, carrying the job", async () => {
    const { fetch } = failing("failed", { code: "refused", message: "local refused this" });
    const err = await client(fetch).generate({ model: "local", prompt: "x" }).catch((e) => e);
    assert.ok(err instanceof RefusedError, err);
    assert.equal(err.code, "refused");
    assert.equal(err.job.status, "failed");
  });

  test("rejects with QuotaError and JobCanceledError for those outcomes", async () => {
    let err = await client(failing("failed", { code: "quota", message: "out" }).fetch)
      .generate({ model: "local", prompt: "x" })
      .catch((e) => e);
    assert.ok(err instanceof QuotaError);
    err = await client(failing("canceled", null).fetch)
      .generate({ model: "local", prompt: "x" })
      .catch((e) => e);
    assert.ok(err instanceof JobCanceledError);
    assert.equal(err.code, "canceled");
  });
});
