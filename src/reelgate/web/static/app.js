// Boot: the API key, the two views (#/ studio, #/usage, #/jobs/<id>), the balance chip.

import { ApiError, adoptKeyFromUrl, getKey, setKey } from "./api.js";
import { $ } from "./format.js";
import { initStudio, loadModels, openJob } from "./studio.js";
import { initUsage, loadBalance, loadUsage } from "./usage.js";

function showView(name) {
  for (const view of ["studio", "usage"]) {
    $(`view-${view}`).hidden = view !== name;
    $(`nav-${view}`).classList.toggle("active", view === name);
    if (view === name) $(`nav-${view}`).setAttribute("aria-current", "page");
    else $(`nav-${view}`).removeAttribute("aria-current");
  }
  document.title = name === "usage" ? "Usage · reelgate studio" : "reelgate studio";
}

function route() {
  const hash = window.location.hash;
  if (hash.startsWith("#/usage")) {
    showView("usage");
    if (getKey()) loadUsage();
    return;
  }
  showView("studio");
  const job = hash.match(/^#\/jobs\/(.+)$/);
  if (job && getKey()) openJob(decodeURIComponent(job[1]));
}

function refreshBalance() {
  loadBalance()
    .then(() => $("balance-chip").classList.remove("rejected"))
    .catch((err) => {
      const rejected = err instanceof ApiError && (err.status === 401 || err.status === 403);
      $("balance-chip").classList.toggle("rejected", rejected);
      $("balance-chip-text").textContent = rejected ? "key rejected" : "— credits";
      $("balance-chip").title = rejected ? err.message : "Available credits";
      if (rejected) {
        $("key-notice").hidden = false;
        $("key-notice-text").textContent = `${err.message} Paste a valid rg_ key below.`;
      }
    });
}

async function connect() {
  const hasKey = Boolean(getKey());
  $("key-notice").hidden = hasKey;
  $("key-notice-text").textContent = "Add your API key to start.";
  $("api-key").value = getKey();
  if (!hasKey) {
    $("models-state").textContent = "add your API key to list the models";
    return;
  }
  refreshBalance();
  await loadModels();
  route();
}

function initKeyForm() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setKey($("api-key").value.trim());
    connect();
  });
}

adoptKeyFromUrl();
initKeyForm();
initStudio({ onFinal: refreshBalance });
initUsage();
window.addEventListener("hashchange", route);
showView(window.location.hash.startsWith("#/usage") ? "usage" : "studio");
connect();
