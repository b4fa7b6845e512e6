// The client against a running reelgate, as a user drives it.
//
//   REELGATE_URL, REELGATE_API_KEY   a gateway with a worker (`reelgate serve`)
//   REELGATE_NO_WORKER_URL           optional: a gateway with no worker (`reelgate api`
//                                    alone, same key), where jobs stay queued, so
//                                    cancel-while-queued and wait timeouts are certain
//
// Without REELGATE_URL these tests are skipped (the unit tests still run).
// tests/integration/test_js_client.py starts both gateways and runs this file.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import {
  AuthenticationError,
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  Reelgate,
  WaitTimeoutError,
} from "../reelgate.mjs";

const URL_ = process.env.REELGATE_URL;
const KEY = process.env.REELGATE_API_KEY;
const NO_WORKER_URL = process.env.REELGATE_NO_WORKER_URL;
const skip = URL_ ? false : "set REELGATE_URL and REELGATE_API_KEY to run against a gateway";

const SMALL = { model: "local", durationSeconds: 1, resolution: "360p", aspectRatio: "16:9" };

/** Run `generate` and check what a progress bar relies on. */
async function generateWatched(rg, prompt) {
  const updates = [];
  const job = await rg.generate(
    { ...SMALL, prompt, metadata: { suite: "js-client" } },
    { onProgress: (u) => updates.push(u), timeoutMs: 60_000 },
  );
  const progress = updates.map((u) => u.progress);
  assert.ok(updates.length >= 2, `onProgress was called ${updates.length} time(s)`);
  assert.deepEqual(progress, [...progress].sort((a, b) => a - b), `non-decreasing: ${progress}`);
  assert.equal(progress.at(-1), 100);
  assert.equal(updates.at(-1).status, "completed");
  assert.equal(job.status, "completed");
  assert.equal(job.delivered_by, "local");
  assert.equal(job.seconds, "1");
  assert.equal(job.size, "640x360");
  assert.ok(job.cost && job.cost.millicredits >= 0, "a completed job has a cost");
  assert.match(job.result.url, /^https?:\/\//);
  return { job, updates };
}

function assertMp4(bytes) {
  const head = new Uint8Array(bytes);
  assert.ok(head.length > 1000, `a real video, not ${head.length} bytes`);
  assert.equal(new TextDecoder().decode(head.subarray(4, 8)), "ftyp", "an MP4 starts with ftyp");
}

/** A JPEG's size from its start-of-frame segment. */
function jpegSize(bytes) {
  const b = new Uint8Array(bytes);
  assert.deepEqual([...b.subarray(0, 3)], [0xff, 0xd8, 0xff], "a JPEG starts with FF D8 FF");
  for (let i = 2; i + 8 < b.length; ) {
    assert.equal(b[i], 0xff, `a JPEG segment at ${i}`);
    const marker = b[i + 1];
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return { height: (b[i + 5] << 8) | b[i + 6], width: (b[i + 7] << 8) | b[i + 8] };
    }
    i += 2 + ((b[i + 2] << 8) | b[i + 3]);
  }
  assert.fail("no start-of-frame segment in the JPEG");
}

describe("against a running gateway", { skip }, () => {
  /** @type {Reelgate} */
  let rg;
  before(() => {
    rg = new Reelgate({ baseUrl: URL_, apiKey: KEY });
  });

  test("models() lists local as usable, with its allowedParams", async () => {
    const models = await rg.models();
    const local = models.find((m) => m.id === "local");
    assert.ok(local, `local missing from ${models.map((m) => m.id)}`);
    assert.equal(local.usable, true);
    assert.ok(local.allowedParams.resolution.includes("360p"));
    assert.ok(local.allowedParams.duration_seconds.includes(1));
  });

  test("generate() reports rising progress to 100 and the video downloads as MP4", async () => {
    const { job, updates } = await generateWatched(rg, "a red fox running through snow");

    // When the gateway offers the event stream, wait() must have used it.
    const probe = await fetch(`${rg.baseUrl}/v1/videos/${job.id}/events`, {
      headers: { Authorization: `Bearer ${KEY}` },
    });
    await probe.text(); // a finished job's stream replays its events and closes
    const sources = new Set(updates.map((u) => u.source));
    assert.deepEqual([...sources], [probe.status === 200 ? "events" : "poll"]);

    assertMp4(await rg.download(job));
    const direct = await fetch(job.result.url); // result.url needs no key
    assert.equal(direct.status, 200);
    assertMp4(await direct.arrayBuffer());
    const res = await rg.download(job.id, { as: "response" });
    assert.equal(res.headers.get("content-type"), "video/mp4");
    assertMp4(await res.arrayBuffer());
  });

  test("download() fetches the video, its poster and its sprite sheet by variant", async () => {
    const job = await rg.generate({ ...SMALL, durationSeconds: 3, prompt: "a lantern in the wind" });
    const { thumbnail_url: posterUrl, spritesheet: layout } = job.result;
    assert.ok(posterUrl && job.result.spritesheet_url && layout, "the gateway made previews");

    const video = await rg.download(job, { as: "blob" });
    assert.equal(video.type, "video/mp4");
    assertMp4(await video.arrayBuffer());
    assertMp4(await rg.download(job.id, { variant: "video" }));

    const poster = await rg.download(job, { variant: "thumbnail", as: "blob" });
    assert.equal(poster.type, "image/webp");
    const posterBytes = new Uint8Array(await poster.arrayBuffer());
    const text = (a, b) => new TextDecoder().decode(posterBytes.subarray(a, b));
    assert.equal(text(0, 4) + text(8, 12), "RIFFWEBP", "a WebP file");
    const direct = new Uint8Array(await (await fetch(posterUrl)).arrayBuffer());
    assert.deepEqual(posterBytes, direct, "the same file as result.thumbnail_url");

    const sheet = await rg.download(job.id, { variant: "spritesheet" });
    assert.ok(sheet instanceof ArrayBuffer);
    assert.deepEqual(jpegSize(sheet), {
      width: layout.columns * layout.tile_width,
      height: layout.rows * layout.tile_height,
    });
    assert.equal(layout.tiles, 3, "one tile a second");

    const res = await rg.download(job, { variant: "spritesheet", as: "response" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "image/jpeg");
    assert.equal((await res.arrayBuffer()).byteLength, sheet.byteLength);
  });

  test("download() of an unknown variant is refused as the gateway refuses it", async () => {
    const err = await rg.download("video_any", { variant: "gif" }).catch((e) => e);
    assert.ok(err instanceof InvalidRequestError, err);
    const raw = await fetch(`${rg.baseUrl}/v1/videos/video_any/content?variant=gif`, {
      headers: { Authorization: `Bearer ${KEY}` },
    });
    const server = (await raw.json()).error;
    assert.equal(raw.status, 400);
    assert.deepEqual(
      [err.code, err.param, err.details.allowed],
      [server.code, server.param, server.allowed],
    );
  });

  test("download() of a job with no video yet is a 409 video_not_ready", {
    skip: NO_WORKER_URL ? false : "needs REELGATE_NO_WORKER_URL (a gateway with no worker)",
  }, async () => {
    const gw = new Reelgate({ baseUrl: NO_WORKER_URL, apiKey: KEY });
    const job = await gw.submit({ ...SMALL, prompt: "still queued" });
    try {
      for (const variant of ["video", "thumbnail", "spritesheet"]) {
        const err = await gw.download(job.id, { variant }).catch((e) => e);
        assert.ok(err instanceof ConflictError, err);
        assert.equal(err.status, 409);
        assert.equal(err.code, "video_not_ready");
        assert.equal(err.details.status, "queued");
      }
    } finally {
      await gw.cancel(job.id);
    }
  });

  test("generate() also works by polling (useEvents: false)", async () => {
    const polling = new Reelgate({ baseUrl: URL_, apiKey: KEY, useEvents: false });
    const { updates } = await generateWatched(polling, "a paper boat on a pond");
    assert.ok(updates.every((u) => u.source === "poll"));
  });

  test("a 400 carries the server's code, param and allowed values", async () => {
    const err = await rg
      .submit({ ...SMALL, prompt: "x", resolution: "999p" })
      .catch((e) => e);
    assert.ok(err instanceof InvalidRequestError, err);
    assert.equal(err.status, 400);
    assert.equal(err.code, "invalid_parameter");
    assert.equal(err.param, "resolution");
    assert.deepEqual(err.details.allowed, ["360p", "480p", "720p", "1080p"]);
    assert.match(err.message, /999p/);
  });

  test("a bad API key is a 401 AuthenticationError", async () => {
    const bad = new Reelgate({ baseUrl: URL_, apiKey: "rg_not_a_real_key_0000000000000000" });
    const err = await bad.models().catch((e) => e);
    assert.ok(err instanceof AuthenticationError, err);
    assert.equal(err.status, 401);
    assert.equal(err.code, "invalid_api_key");
  });

  test("get() of an unknown id is a 404 not_found", async () => {
    const err = await rg.get("video_does_not_exist").catch((e) => e);
    assert.equal(err.status, 404);
    assert.equal(err.code, "not_found");
  });

  test("cancel() of a queued job answers canceled, and wait() sees it", async () => {
    const gw = new Reelgate({ baseUrl: NO_WORKER_URL ?? URL_, apiKey: KEY });
    const job = await gw.submit({ ...SMALL, durationSeconds: 20, resolution: "1080p", prompt: "c" });
    assert.equal(job.status, "queued");
    const canceled = await gw.cancel(job.id);
    if (NO_WORKER_URL) assert.equal(canceled.status, "canceled"); // nobody could claim it
    const final = await gw.wait(job.id, { timeoutMs: 30_000 });
    assert.equal(final.status, "canceled");
    assert.equal(final.result, null);
    assert.equal((await gw.get(job.id)).status, "canceled");
  });

  test("wait() gives up after timeoutMs with the job still queued", {
    skip: NO_WORKER_URL ? false : "needs REELGATE_NO_WORKER_URL (a gateway with no worker)",
  }, async () => {
    const gw = new Reelgate({ baseUrl: NO_WORKER_URL, apiKey: KEY });
    const job = await gw.submit({ ...SMALL, prompt: "never picked up" });
    const started = Date.now();
    const err = await gw.wait(job.id, { timeoutMs: 700 }).catch((e) => e);
    assert.ok(err instanceof WaitTimeoutError, err);
    assert.ok(Date.now() - started < 5000);
    assert.equal(err.job.status, "queued");
    await gw.cancel(job.id);
  });

  test("list() pages with limit/after; iterate() walks the same jobs", async () => {
    const gw = new Reelgate({ baseUrl: NO_WORKER_URL ?? URL_, apiKey: KEY });
    const mine = [];
    for (const prompt of ["page a", "page b", "page c"]) {
      mine.push((await gw.submit({ ...SMALL, prompt })).id);
    }
    try {
      const seen = [];
      let after;
      for (let pages = 0; !mine.every((id) => seen.includes(id)); pages++) {
        assert.ok(pages < 50, "the created jobs never showed up");
        const page = await gw.list({ limit: 2, after });
        assert.ok(page.data.length <= 2);
        assert.equal(page.last_id, page.data.at(-1)?.id ?? null);
        seen.push(...page.data.map((j) => j.id));
        if (!mine.every((id) => seen.includes(id))) assert.equal(page.has_more, true);
        after = page.last_id;
      }
      assert.equal(new Set(seen).size, seen.length, "no job on two pages");
      // newest first: the three appear in reverse order of creation
      assert.deepEqual(seen.filter((id) => mine.includes(id)), [...mine].reverse());

      const walked = [];
      for await (const j of gw.iterate({ limit: 2 })) {
        walked.push(j.id);
        if (walked.length === seen.length) break;
      }
      assert.deepEqual(walked, seen);
      if (NO_WORKER_URL) {
        const queued = await gw.list({ status: "queued", limit: 100 });
        assert.ok(mine.every((id) => queued.data.some((j) => j.id === id)));
      }
    } finally {
      await Promise.all(mine.map((id) => gw.cancel(id).catch(() => {})));
    }
  });

  /** A client that records the URL of each request it sends. */
  function recording() {
    const urls = [];
    const gw = new Reelgate({
      baseUrl: URL_,
      apiKey: KEY,
      fetch: (url, init) => {
        urls.push(new URL(String(url)));
        return fetch(url, init);
      },
    });
    return { gw, urls };
  }

  test("models() follows cursors: source=builtin, limit=3 gives every builtin model once, in order", async () => {
    const whole = await rg.modelsPage({ source: "builtin", limit: 500 });
    const ids = whole.data.map((m) => m.id);
    assert.equal(whole.has_more, false);
    assert.equal(whole.next_cursor, null);
    assert.equal(whole.total, ids.length);
    assert.ok(ids.length > 3, `a catalog to page through, not ${ids}`);
    assert.ok(ids.includes("local"));
    assert.ok(whole.data.every((m) => m.source === "builtin" && m.synced === null && m.priced));
    // the hand-written models come first in the unfiltered catalog, in the same order
    const all = await rg.models();
    assert.deepEqual(all.filter((m) => m.source === "builtin").map((m) => m.id), ids);

    const { gw, urls } = recording();
    const paged = await gw.models({ source: "builtin", limit: 3 });
    assert.deepEqual(paged.map((m) => m.id), ids, "each builtin model once, in order");
    assert.equal(urls.length, Math.ceil(ids.length / 3), "one request a page");
    assert.ok(urls.every((u) => u.pathname === "/v1/models"));
    assert.ok(urls.every((u) => u.searchParams.get("limit") === "3"));
    assert.ok(urls.every((u) => u.searchParams.get("source") === "builtin"));
    assert.equal(urls[0].searchParams.has("after"), false);
    assert.ok(urls.slice(1).every((u) => u.searchParams.get("after")));

    // the same walk by hand: full pages of 3 but the last, the same total on each
    const seen = [];
    let after;
    for (let pages = 0; ; pages++) {
      assert.ok(pages <= ids.length, "the pages never ended");
      const page = await rg.modelsPage({ source: "builtin", limit: 3, after });
      assert.equal(page.total, ids.length);
      seen.push(...page.data.map((m) => m.id));
      if (!page.has_more) {
        assert.equal(page.next_cursor, null);
        assert.ok(page.data.length >= 1 && page.data.length <= 3);
        break;
      }
      assert.equal(page.data.length, 3);
      assert.ok(page.next_cursor, "has_more comes with a cursor");
      after = page.next_cursor;
    }
    assert.deepEqual(seen, ids);

    const synced = await rg.modelsPage({ source: "synced" });
    assert.deepEqual([synced.data, synced.total, synced.has_more], [[], 0, false], "nothing synced");
  });

  test("models() with search and capability filters answers what the gateway's rules select", async () => {
    const all = await rg.models({ limit: 500 });
    const text = (m) =>
      [m.id, m.display_name, m.provider, m.upstream_model ?? "", m.strengths].join(" ").toLowerCase();
    const veo = all.filter((m) => text(m).includes("veo"));
    const caps = ["image_input", "negative_prompt"];
    const expected = veo.filter((m) => caps.every((c) => m.capabilities.includes(c)));
    assert.ok(expected.length >= 2, `veo models with ${caps}: ${expected.map((m) => m.id)}`);
    assert.ok(expected.length < veo.length, "the capability filter leaves some veo model out");

    const { gw, urls } = recording();
    const found = await gw.models({ search: "VEO", capability: caps, limit: 1 });
    assert.deepEqual(found.map((m) => m.id), expected.map((m) => m.id));
    assert.equal(urls.length, expected.length, "one model a page, each page followed");
    for (const u of urls) {
      assert.deepEqual(u.searchParams.getAll("capability"), caps);
      assert.equal(u.searchParams.get("search"), "VEO");
    }
    for (const m of found) {
      assert.ok(caps.every((c) => m.capabilities.includes(c)), `${m.id}: ${m.capabilities}`);
    }
    // every word must match, and a capability alone filters too
    assert.deepEqual(await rg.models({ search: "veo no-such-word" }), []);
    const seeded = await rg.models({ capability: "seed" });
    assert.deepEqual(
      seeded.map((m) => m.id),
      all.filter((m) => m.capabilities.includes("seed")).map((m) => m.id),
    );
  });

  test("model(id) gets one model; an unknown fal:/replicate: id is a 404 naming it intact", async () => {
    const all = await rg.models({ source: "builtin" });
    for (const listed of all) {
      const one = await rg.model(listed.id);
      assert.equal(one.id, listed.id); // ids such as "veo (Audio)" too
      assert.equal(one.object, "model");
      assert.equal(one.display_name, listed.display_name);
      assert.equal(one.source, "builtin");
      assert.deepEqual(one.capabilities, listed.capabilities);
      assert.deepEqual(one.price, listed.price);
    }
    const local = await rg.model("local");
    assert.equal(local.usable, true);
    assert.ok(local.capabilities.includes("text_to_video"));

    for (const id of ["fal:fal-ai/veo3.1", "replicate:owner/some model"]) {
      const err = await rg.model(id).catch((e) => e);
      assert.ok(err instanceof NotFoundError, err);
      assert.equal(err.status, 404);
      assert.equal(err.code, "unknown_model");
      assert.equal(err.param, "model_id");
      assert.ok(err.message.includes(`'${id}'`), `the gateway got the id intact: ${err.message}`);
    }
  });

  test("submit() with audio or providerParams to a builtin model is the gateway's 400 naming it", async () => {
    const both = await rg
      .submit({ ...SMALL, prompt: "x", audio: true, providerParams: { cfg_scale: 0.7 } })
      .catch((e) => e);
    assert.ok(both instanceof InvalidRequestError, both);
    assert.equal(both.status, 400);
    assert.equal(both.code, "invalid_parameter");
    assert.equal(both.param, "provider_params");
    assert.equal(both.details.model, "local");
    assert.match(both.message, /hand-written/);

    const audio = await rg.submit({ ...SMALL, prompt: "x", audio: false }).catch((e) => e);
    assert.ok(audio instanceof InvalidRequestError, audio);
    assert.equal(audio.status, 400);
    assert.equal(audio.param, "audio");

    // without them the job's params say so: the model's defaults
    const gw = new Reelgate({ baseUrl: NO_WORKER_URL ?? URL_, apiKey: KEY });
    const job = await gw.submit({ ...SMALL, prompt: "params" });
    try {
      assert.equal(job.params.audio, null);
      assert.equal(job.params.provider_params, null);
    } finally {
      await gw.cancel(job.id).catch(() => {});
    }
  });
});
