// What to tell a person when something did not go as asked: one place that
// turns an API error or a job's outcome into a clear, actionable message.

import { ApiError } from "./api.js";
import { credits, el } from "./format.js";

/** An alert box: kind is info | success | warn | error. */
export function alert(kind, title, body, ...extra) {
  return el(
    "div",
    { class: `alert ${kind}`, role: kind === "error" ? "alert" : "status", dataset: { kind } },
    el("strong", { class: "alert-title" }, title),
    body ? el("p", {}, body) : null,
    ...extra,
  );
}

function facts(rows) {
  return el(
    "dl",
    { class: "facts" },
    rows.map(([label, value, cls]) =>
      el("div", { class: cls || "" }, el("dt", {}, label), el("dd", {}, value)),
    ),
  );
}

function allowedList(values) {
  return el(
    "p",
    { class: "allowed" },
    "Allowed: ",
    values.map((v) => el("code", {}, String(v))),
  );
}

/** A rejected submit (or any failed API call) as a message; `subject` names what was
 * asked for in the credits facts ("this job", "these 3 shots"). */
export function explainApiError(err, { subject = "this job" } = {}) {
  if (!(err instanceof ApiError)) {
    return alert(
      "error",
      "Could not reach the gateway",
      `${err && err.message ? err.message : err}. Check that reelgate is running and try again.`,
    );
  }
  const d = err.details || {};
  switch (err.status === 402 ? "insufficient_credits" : err.code) {
    case "insufficient_credits":
      return alert(
        "error",
        "Not enough credits",
        err.message,
        facts([
          ["Balance", `${credits(d.balance)} credits`],
          ["Available", `${credits(d.available ?? d.balance)} credits`],
          [`Needed for ${subject}`, `${credits(d.hold_needed)} credits`],
          ["Shortfall", `${credits(d.shortfall)} credits`, "bad"],
        ]),
        el("p", { class: "hint" }, "Add credits to the account, or ask for fewer seconds or a cheaper model."),
      );
    case "missing_api_key":
    case "invalid_api_key":
      return alert("error", "API key not accepted", `${err.message} Paste a valid key at the top right.`);
    case "model_not_allowed":
      return alert("error", "This account may not use that model", err.message);
    case "model_unavailable":
      return alert("error", "Model unavailable on this gateway", err.message);
    case "image_too_large":
      return alert("error", "The start image is too large", `${err.message}`);
    case "rate_limited":
      return alert(
        "warn",
        "Slow down",
        `${err.message}${err.retryAfter ? ` Try again in ${err.retryAfter} s.` : ""}`,
      );
    default:
      if (err.status === 400 || err.status === 422) {
        const param = d.param ? ` (${d.param})` : "";
        return alert(
          "error",
          `The request was not accepted${param}`,
          err.message,
          Array.isArray(d.allowed) && d.allowed.length ? allowedList(d.allowed) : null,
        );
      }
      return alert("error", `The gateway answered ${err.status}`, err.message);
  }
}

/** The attempts that ended on a quota answer (the job moved down its chain). */
export function quotaAttempts(job) {
  return (job.attempts || []).filter((a) => a.outcome === "quota");
}

/** A message about a job's outcome, or null when there is nothing to say. */
export function explainJob(job) {
  if (!job) return null;
  const skipped = (job.attempts || []).filter((a) => a.model !== job.delivered_by && a.outcome && !["running", "submitting", "completed"].includes(a.outcome));
  if (job.status === "completed") {
    if (job.delivered_by && job.delivered_by !== job.model) {
      const quota = quotaAttempts(job).map((a) => a.model);
      const why = quota.length
        ? `${quota.join(", ")} ${quota.length > 1 ? "were" : "was"} out of quota upstream`
        : `${job.model} could not take it (${skipped.map((a) => a.outcome).join(", ") || "unavailable"})`;
      return alert(
        "warn",
        `Delivered by ${job.delivered_by}, a fallback`,
        `${why}, so the job moved to ${job.delivered_by}, which delivered this video. You were billed at ${job.delivered_by}'s price.`,
      );
    }
    if (job.result && job.result.mirror_status === "failed") {
      return alert(
        "warn",
        "Playing from the provider's link",
        "The copy into this gateway's storage failed, so this link is the provider's and may expire. Download it soon.",
      );
    }
    return null;
  }
  if (job.status === "canceled") {
    return alert("info", "Job canceled", "Nothing was charged for it.");
  }
  if (job.status !== "failed") {
    if (skipped.length) {
      const last = skipped[skipped.length - 1];
      const reason = last.outcome === "quota" ? "is out of quota upstream" : `answered ${last.outcome}`;
      return alert("info", "Falling back", `${last.model} ${reason}; trying the next model in the chain.`);
    }
    return null;
  }
  const error = job.error || {};
  const message = error.message || "The job failed.";
  switch (error.code) {
    case "refused":
      return alert(
        "error",
        "Refused on safety grounds — reword the prompt",
        message,
        /reword/i.test(message)
          ? null
          : el("p", { class: "hint" }, "Refusals are not retried on other models. Edit the prompt (or the image) and resubmit."),
      );
    case "quota":
      return alert(
        "error",
        "Out of quota upstream",
        message,
        el("p", { class: "hint" }, "Pick one or more fallback models so another model can take the job, or retry later."),
      );
    case "timeout":
      return alert(
        "error",
        "Timed out",
        message,
        el("p", { class: "hint" }, "Nothing was charged. Resubmit, or try a faster model."),
      );
    default:
      return alert("error", "The job failed", `${message}${error.code ? ` (${error.code})` : ""}`, el("p", { class: "hint" }, "Nothing was charged for it."));
  }
}

/** A message about a storyboard's outcome (GET /v1/storyboards/{id}), or null. */
export function explainStoryboard(sb) {
  if (!sb) return null;
  if (sb.status === "completed") {
    const fellBack = (sb.shots || []).filter((s) => s.delivered_by && s.delivered_by !== s.model);
    if (!fellBack.length) return null;
    return alert(
      "warn",
      fellBack.length > 1 ? "Some shots were delivered by a fallback" : `Shot ${fellBack[0].index} was delivered by a fallback`,
      fellBack.map((s) => `Shot ${s.index}: ${s.model} could not take it, so ${s.delivered_by} delivered it (and was billed).`).join(" "),
    );
  }
  if (sb.status === "canceled") {
    return alert("info", "Storyboard canceled", "Shots that were already delivered stay billed; the others were canceled.");
  }
  if (sb.status !== "failed") return null;
  const error = sb.error || {};
  const message = error.message || "The storyboard failed.";
  if (error.code === "join_failed") {
    return alert("error", "The shots could not be joined", message);
  }
  const title = error.shot ? `Shot ${error.shot} failed` : "The storyboard failed";
  const hint =
    error.shot_error === "refused"
      ? "It was refused on safety grounds: reword its prompt and retry it. The other shots are kept."
      : error.shot
        ? "Retry that shot below, with its prompt or model changed if you like. The other shots are kept, and only delivered shots are billed."
        : null;
  return alert("error", title, message, hint ? el("p", { class: "hint" }, hint) : null);
}
