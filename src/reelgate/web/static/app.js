// Boot: the API key, the views (#/ studio, #/storyboard, #/storyboards/<id>, #/gallery,
// #/videos/<id>, #/usage, #/jobs/<id> in the studio), the balance chip.

import { ApiError, adoptKeyFromUrl, getKey, setKey } from "./api.js";
import { $, parseHash } from "./format.js";
import { initGallery, loadGallery } from "./gallery.js";
import { initStoryboard, openStoryboardEditor } from "./storyboard.js";
import { initBoard, leaveBoard, openBoard } from "./storyboardpage.js";
import { initStudio, loadModels, openJob } from "./studio.js";
import { initUsage, loadBalance, loadUsage } from "./usage.js";
import { leaveVideo, openVideo } from "./videopage.js";

const VIEWS = ["studio", "storyboard", "board", "gallery", "video", "usage"];
const TITLES = {
  studio: "reelgate studio",
  storyboard: "Storyboard · reelgate studio",
  board: "Storyboard · reelgate studio",
  gallery: "Gallery · reelgate studio",
  video: "Video · reelgate studio",
  usage: "Usage · reelgate studio",
};
// a video's page sits under the Gallery tab, a storyboard's under the Storyboard tab
const TAB_OF = { video: "gallery", board: "storyboard" };

function viewOf(path) {
  if (path.startsWith("/usage")) return "usage";
  if (path.startsWith("/storyboards/")) return "board";
  if (path === "/storyboard" || path === "/storyboards") return "storyboard";
  if (path === "/gallery") return "gallery";
  if (path.startsWith("/videos/")) return "video";
  return "studio";
}

function showView(name) {
  if (name !== "video" && !$("view-video").hidden) leaveVideo();
  if (name !== "board" && !$("view-board").hidden) leaveBoard();
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  const tab = TAB_OF[name] || name;
  for (const link of document.querySelectorAll(".tabs a")) {
    const on = link.dataset.view === tab;
    link.classList.toggle("active", on);
    if (on) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = TITLES[name];
}

function route() {
  const { path, params } = parseHash();
  const name = viewOf(path);
  showView(name);
  if (!getKey()) return;
  if (name === "usage") loadUsage();
  else if (name === "gallery") loadGallery();
  else if (name === "storyboard") openStoryboardEditor();
  else if (name === "board") openBoard(decodeURIComponent(path.slice("/storyboards/".length)));
  else if (name === "video") openVideo(decodeURIComponent(path.slice("/videos/".length)), params);
  else {
    const job = path.match(/^\/jobs\/(.+)$/);
    if (job) openJob(decodeURIComponent(job[1]));
  }
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
initStoryboard();
initBoard({ onFinal: refreshBalance });
initGallery();
initUsage();
window.addEventListener("hashchange", route);
showView(viewOf(parseHash().path));
connect();
