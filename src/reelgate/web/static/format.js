// Small DOM and formatting helpers. Text always goes in through textContent:
// prompts and error messages are data, never markup.

export const $ = (id) => document.getElementById(id);

/** Build an element: el("a", {href: "#", class: "x"}, "text", childNode, …). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace a node's children, skipping null, undefined and false (as el() does). */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** "45.000" → "45", "1.500" → "1.5": credits are exact decimal strings. */
export function credits(value) {
  if (value === null || value === undefined || value === "") return "—";
  const s = String(value);
  if (!s.includes(".")) return s;
  return s.replace(/0+$/, "").replace(/\.$/, "");
}

/** Credits with thousands grouped, for balances: "99998.000" → "99,998". */
export function grouped(value) {
  const c = credits(value);
  if (c === "—") return c;
  const [whole, frac] = c.split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = whole.replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return sign + digits + (frac ? `.${frac}` : "");
}

export const creditsLabel = (value) => {
  const c = credits(value);
  return c === "—" ? c : `${c} ${c === "1" ? "credit" : "credits"}`;
};

const SYMBOLS = { USD: "$", EUR: "€", GBP: "£" };

/** Money as the API gives it ({amount: "6.00", currency: "USD"}) → "$6.00". */
export function money(m) {
  if (!m || m.amount === undefined || m.amount === null) return "";
  const symbol = SYMBOLS[m.currency];
  return symbol ? `${symbol}${m.amount}` : `${m.amount} ${m.currency}`;
}

/** An exact decimal string times a whole number, exactly ("0.20" × 4 → "0.80"). */
export function times(amount, n) {
  const [whole, frac = ""] = String(amount).split(".");
  const scaled = BigInt(whole + frac) * BigInt(n);
  const digits = scaled.toString().padStart(frac.length + 1, "0");
  return frac.length ? `${digits.slice(0, -frac.length)}.${digits.slice(-frac.length)}` : digits;
}

/** The exact sum of decimal strings ("0.02" + "0.125" → "0.145"). */
export function sumDecimals(values) {
  const scale = Math.max(0, ...values.map((v) => (String(v).split(".")[1] || "").length));
  let total = 0n;
  for (const v of values) {
    const [whole, frac = ""] = String(v).split(".");
    total += BigInt(whole + frac.padEnd(scale, "0"));
  }
  const digits = total.toString().padStart(scale + 1, "0");
  return scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
}

/** Seconds that may be fractional, without trailing zeros: 3.5 → "3.5 s", 4 → "4 s". */
export function secondsExact(value) {
  if (value === null || value === undefined || value === "") return "—";
  return `${Number(Number(value).toFixed(3))} s`;
}

/** Exact decimal-credit string → integer millicredits. */
export function millicredits(value) {
  const [whole, frac = ""] = String(value).split(".");
  return Number(whole) * 1000 + Number((frac + "000").slice(0, 3));
}

export function fromMillicredits(mc) {
  const whole = Math.floor(mc / 1000);
  const frac = String(mc % 1000).padStart(3, "0");
  return `${whole}.${frac}`;
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  return `${Number.isInteger(n) ? n : n.toFixed(2)} s`;
}

export function elapsed(sec) {
  if (sec < 60) return `${Math.max(0, Math.round(sec))} s`;
  const m = Math.floor(sec / 60);
  const s = Math.round(sec % 60);
  return `${m} min ${String(s).padStart(2, "0")} s`;
}

export function relativeTime(date) {
  const diff = (Date.now() - date.getTime()) / 1000;
  if (diff < 45) return "just now";
  if (diff < 3600) return `${Math.round(diff / 60)} min ago`;
  if (diff < 86400) return `${Math.round(diff / 3600)} h ago`;
  return date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

export function bytes(n) {
  if (!n && n !== 0) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export const STATUS_LABELS = {
  queued: "queued",
  in_progress: "in progress",
  completed: "completed",
  failed: "failed",
  canceled: "canceled",
};

/** The route in the address: "#/gallery?model=local" → {path: "/gallery", params}. */
export function parseHash(hash = window.location.hash) {
  const raw = hash.replace(/^#/, "");
  const cut = raw.indexOf("?");
  return {
    path: cut === -1 ? raw : raw.slice(0, cut),
    params: new URLSearchParams(cut === -1 ? "" : raw.slice(cut + 1)),
  };
}

/** A CSS url() for a URL from the API (quotes and backslashes cannot end the string). */
export function cssUrl(url) {
  return `url("${String(url).replace(/["\\\n\r]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`)}")`;
}
