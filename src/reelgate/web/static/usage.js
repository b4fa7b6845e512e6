// The usage view: balance from GET /v1/balance, charts from GET /v1/usage/charts (SVG
// drawn by the server), a CSV download of GET /v1/usage/export.csv, and the
// recent-requests log from GET /v1/usage/recent, each job linking back to the studio.

import { api } from "./api.js";
import { $, credits, el, grouped, money, relativeTime, STATUS_LABELS } from "./format.js";
import { explainApiError } from "./messages.js";

const page = { after: null, days: 30, range: null };

// The server draws the charts; they are parsed as SVG (never as HTML) and adopted.
function placeSvg(slot, svgText) {
  const doc = new DOMParser().parseFromString(svgText, "image/svg+xml");
  const svg = doc.documentElement;
  if (svg.nodeName !== "svg") {
    $(slot).replaceChildren(el("p", { class: "muted small" }, "This chart could not be drawn."));
    return;
  }
  $(slot).replaceChildren(document.importNode(svg, true));
}

async function loadCharts() {
  const body = await api.charts(page.days);
  page.range = { start: body.start, end: body.end };
  placeSvg("chart-spend", body.spend.svg);
  placeSvg("chart-outcomes", body.outcomes.svg);
  placeSvg("chart-times", body.time_to_video.svg);
  const c = body.outcomes.counts;
  const jobs = c.completed + c.failed + c.canceled + c.in_progress;
  $("chart-totals").textContent = `${body.start} – ${body.end} · ${grouped(body.spend.total)} credits`
    + (body.spend.total_money ? ` (${money(body.spend.total_money)})` : "")
    + ` · ${jobs} jobs, ${c.completed} completed, ${c.failed} failed`
    + (body.sampled ? " · newest jobs only" : "");
  for (const b of $("chart-days").querySelectorAll("button")) {
    b.setAttribute("aria-pressed", String(Number(b.dataset.days) === page.days));
  }
}

async function downloadCsv() {
  const { start, end } = page.range || {};
  if (!start) return;
  try {
    const blob = await api.exportCsv(start, end);
    const a = el("a", { href: URL.createObjectURL(blob), download: `reelgate-usage-${start}-${end}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  } catch (err) {
    $("usage-messages").replaceChildren(explainApiError(err));
  }
}

function row(r) {
  const created = r.created_at ? new Date(r.created_at) : null;
  const fellBack = r.delivered_by && r.delivered_by !== r.model;
  return el(
    "tr",
    { dataset: { job: r.job_id } },
    el("td", {}, el("a", { class: "job-link", href: `#/jobs/${encodeURIComponent(r.job_id)}` }, r.job_id)),
    el("td", {}, el("code", {}, r.model)),
    el("td", {}, r.delivered_by ? el("code", { class: fellBack ? "fell-back" : "", title: fellBack ? "A fallback model delivered this job" : "" }, r.delivered_by) : el("span", { class: "muted" }, "—")),
    el("td", {}, el("span", { class: `badge ${r.status}`, title: r.error_code || "" }, STATUS_LABELS[r.status] || r.status),
      r.error_code ? el("span", { class: "muted small err-code" }, r.error_code) : null),
    el("td", { class: "num" }, r.seconds ?? el("span", { class: "muted" }, `(${r.requested_seconds ?? "—"})`)),
    el("td", { class: "num cost", title: r.cost_money ? money(r.cost_money) : "" },
      r.cost !== null && r.cost !== undefined ? credits(r.cost) : "—",
      r.cost_money ? el("span", { class: "muted small money" }, ` ${money(r.cost_money)}`) : null),
    el("td", { title: r.created_at || "" }, created ? relativeTime(created) : "—",
      r.latency_seconds ? el("span", { class: "muted small" }, ` · ${r.latency_seconds.toFixed(1)} s`) : null),
  );
}

export async function loadBalance() {
  const b = await api.balance();
  $("bal-balance").textContent = grouped(b.balance);
  $("bal-held").textContent = grouped(b.held);
  $("bal-available").textContent = grouped(b.available);
  for (const name of ["balance", "held", "available"]) {
    const worth = b.money ? money({ amount: b.money[name], currency: b.money.currency }) : "";
    $(`bal-${name}-money`).textContent = worth ? `(${worth})` : "";
  }
  $("balance-chip-text").textContent = `${grouped(b.available)} credits`
    + (b.money ? ` · ${money({ amount: b.money.available, currency: b.money.currency })}` : "");
  $("balance-chip").classList.toggle("low", Number(b.available) <= 0);
  return b;
}

async function loadRows(append) {
  const status = $("usage-status").value;
  const body = await api.recent({ limit: 25, status, after: append ? page.after : undefined });
  const rows = body.data.map(row);
  if (append) $("usage-rows").append(...rows);
  else $("usage-rows").replaceChildren(...rows);
  page.after = body.last_id;
  $("usage-more").hidden = !body.has_more;
  $("usage-empty").hidden = $("usage-rows").children.length > 0;
}

export async function loadUsage(append = false) {
  $("usage-messages").replaceChildren();
  $("usage-table").classList.add("loading");
  try {
    await Promise.all(append ? [loadRows(true)] : [loadBalance(), loadCharts(), loadRows(false)]);
  } catch (err) {
    $("usage-messages").replaceChildren(explainApiError(err));
  } finally {
    $("usage-table").classList.remove("loading");
  }
}

export function initUsage() {
  $("usage-refresh").addEventListener("click", () => loadUsage());
  $("usage-status").addEventListener("change", () => loadUsage());
  $("usage-more").addEventListener("click", () => loadUsage(true));
  $("usage-export").addEventListener("click", () => downloadCsv());
  for (const b of $("chart-days").querySelectorAll("button")) {
    b.addEventListener("click", async () => {
      page.days = Number(b.dataset.days);
      try {
        await loadCharts();
      } catch (err) {
        $("usage-messages").replaceChildren(explainApiError(err));
      }
    });
  }
}
