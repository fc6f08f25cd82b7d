// The review console: sign in with a reviewer's key, list the images waiting for review, decide
// on them from the keyboard or with the buttons, and read an image's audit trail. The keys, the
// filters and the API paths come from the server (#page-config, api/pages/review_console.py),
// which also writes the help overlay from the same table.

import { FieldErrors } from "./problems.js";
import { keyLabel } from "./page-key.js";
import { ApiRefused, ReviewApi } from "./review-api.js";
import { renderAuditEntry, renderCard, updateOther } from "./review-cards.js";
import { RETRYABLE, outcomeText, summary } from "./review-outcomes.js";
import { ReviewKey } from "./review-key.js";

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("page-config").textContent);
const reviewKey = new ReviewKey(config.paths.keyCheck);
const grid = $("grid");

let api = null; // a ReviewApi while signed in
let identity = null; // {key_id, requester, admin}
let filters = {};
let nextCursor = null;
let rejecting = null; // the card the reason dialog is open for
let auditOf = null; // the card whose trail the side panel shows
let returnFocus = null; // where the focus goes back when the help closes

// --- the key ---

function signedIn(key, who) {
  identity = who;
  api = new ReviewApi(config.paths, key);
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("key-status").hidden = false;
  const scope = who.admin ? `${who.requester}, admin` : who.requester;
  $("key-status-text").textContent = `Signed in with key ${keyLabel(key)} (${scope})`;
  $("requester-field").hidden = !who.admin;
}

function signOut(message) {
  reviewKey.forget();
  api = null;
  identity = null;
  grid.replaceChildren();
  closeAudit({ refocus: false });
  $("console").hidden = true;
  $("key-status").hidden = true;
  $("sign-in").hidden = false;
  const box = new FieldErrors($("key-form"), $("key-form-error"));
  box.clear();
  if (message) box.summarize([message]);
  $("review-key").focus();
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("review-key");
  const box = new FieldErrors($("key-form"), $("key-form-error"));
  box.clear();
  const key = input.value.trim();
  if (!key) {
    box.show("key", "Enter a key with the review scope.");
    input.focus();
    return;
  }
  const { identity: who, refusal } = await reviewKey.signIn(key);
  input.value = ""; // never left in the field, kept or not
  if (refusal) {
    box.show("key", refusal);
    input.focus();
    return;
  }
  signedIn(key, who);
  await load({ append: false });
  (current()?.querySelector(".card") || $("reload")).focus(); // the key field is gone: focus the work
});

$("sign-out").addEventListener("click", () => signOut());

// --- what went wrong, said once ---

function announce(text) {
  $("announce").textContent = text;
}

function failed(error, what) {
  if (error instanceof ApiRefused && error.status === 401) {
    signOut("The key is no longer accepted (unknown or revoked): sign in again.");
    return;
  }
  if (error instanceof ApiRefused && error.status === 429) {
    announce(`${what}: too many requests just now; try again in ${error.retryAfter || "a few"} seconds.`);
  } else if (error instanceof ApiRefused) announce(`${what}: ${error.message}`);
  else announce(`${what}: no connection to the server.`);
}

// --- the grid ---

const cards = () => [...grid.children];
const current = () => grid.querySelector("li.current") || grid.firstElementChild;
const open = (li) => !li.dataset.outcome || RETRYABLE.has(li.dataset.outcome);
const selected = () => cards().filter((li) => li.querySelector(".select-box").checked && open(li));
const titleOf = (li) => li.querySelector(".card-title").textContent;
const cardOf = (jobId, variant) => cards().find((li) => li.dataset.job === jobId && li.dataset.variant === String(variant));

function updateCounts() {
  const shown = cards().length;
  const waiting = cards().filter(open).length;
  const chosen = selected().length;
  const more = nextCursor ? ", more to load" : "";
  $("counts").textContent = `${shown} shown${more} · ${waiting} undecided · ${chosen} selected`;
  $("approve-selected").textContent = `Approve selected (${chosen})`;
  $("approve-selected").disabled = chosen === 0;
}

/** Requests one "load" may make while pages come back short. */
const FOLLOW_LIMIT = 10;

/** Up to a grid page of images from `cursor` on. The API looks at a bounded number of jobs per
 *  request, so a rare filter may answer a short page with a cursor: follow it a few times. */
async function fetchPage(cursor) {
  const items = [];
  let next = cursor;
  for (let request = 0; request < FOLLOW_LIMIT; request += 1) {
    const page = await api.list(filters, { cursor: next, limit: config.pageSize - items.length });
    items.push(...page.items);
    next = page.next_cursor;
    if (!next || items.length >= config.pageSize) break;
  }
  return { items, next };
}

async function load({ append }) {
  grid.setAttribute("aria-busy", "true");
  let page;
  try {
    page = await fetchPage(append ? nextCursor : null);
  } catch (error) {
    failed(error, "The images could not be loaded");
    return;
  } finally {
    grid.setAttribute("aria-busy", "false");
  }
  if (!append) {
    grid.replaceChildren();
    closeAudit({ refocus: false });
  }
  const first = grid.children.length;
  for (const item of page.items) {
    grid.append(renderCard(item, { categories: config.categories, showRequester: identity.admin }));
  }
  nextCursor = page.next;
  $("more").hidden = !nextCursor;
  $("empty").hidden = grid.children.length > 0 || Boolean(nextCursor);
  updateCounts();
  const count = page.items.length;
  if (count) announce(`${count} image${count === 1 ? "" : "s"} loaded.`);
  else announce(nextCursor ? "None found yet: press Show more to look further." : "No image waits for review with these filters.");
  const firstNew = grid.children[first];
  if (firstNew) makeCurrent(firstNew, { focus: append });
}

function makeCurrent(li, { focus = true } = {}) {
  for (const other of cards()) {
    other.classList.toggle("current", other === li);
    other.querySelector(".card").tabIndex = other === li ? 0 : -1;
  }
  if (focus) li.querySelector(".card").focus();
}

grid.addEventListener("focusin", (event) => {
  const li = event.target.closest("li.review-card");
  if (li && !li.classList.contains("current")) makeCurrent(li, { focus: false });
});

function move(step) {
  const list = cards();
  if (!list.length) return;
  const at = list.indexOf(current());
  makeCurrent(list[Math.max(0, Math.min(list.length - 1, at + step))]);
}

/** Cards per row, as the layout placed them. */
function columns() {
  const list = cards();
  const top = list[0]?.offsetTop;
  return Math.max(1, list.filter((li) => li.offsetTop === top).length);
}

$("filters").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  filters = {
    requester: identity.admin ? form.elements.requester.value.trim() : "",
    category: form.elements.category.value,
    flagged: form.elements.flagged.value,
  };
  await load({ append: false });
});

$("reload").addEventListener("click", () => load({ append: false }));
$("more").addEventListener("click", () => load({ append: true }));
grid.addEventListener("change", (event) => {
  if (event.target.matches(".select-box")) updateCounts();
});

// --- decisions ---

function showOutcome(li, result, decision) {
  li.removeAttribute("aria-busy");
  li.dataset.outcome = result.outcome;
  li.querySelector(".outcome").textContent = outcomeText(result, decision);
  const closed = !open(li);
  for (const button of li.querySelectorAll("[data-action=approve], [data-action=reject], [data-action=regenerate]")) {
    button.disabled = closed;
  }
  const box = li.querySelector(".select-box");
  box.disabled = closed;
  if (closed) box.checked = false;
  if (result.outcome !== "applied") return;
  const review = {
    status: decision.regenerate ? "regenerating" : decision.decision === "approve" ? "approved" : "rejected",
    reason: decision.reason,
  };
  for (const other of cards()) if (other.dataset.job === decision.job_id) updateOther(other, decision.variant, review);
}

/** Send one decision for each card in `lis`, in turns of config.maxDecisions; show each result. */
async function decide(lis, decision, { reason = null, regenerate = false } = {}) {
  const targets = lis.filter((li) => open(li) && !li.hasAttribute("aria-busy")); // no double submit
  if (!targets.length) return;
  const decisions = targets.map((li) => ({
    job_id: li.dataset.job,
    variant: Number(li.dataset.variant),
    decision,
    reason,
    regenerate,
  }));
  for (const li of targets) li.setAttribute("aria-busy", "true");
  const results = [];
  try {
    for (let at = 0; at < decisions.length; at += config.maxDecisions) {
      results.push(...(await api.decide(decisions.slice(at, at + config.maxDecisions))));
    }
  } catch (error) {
    failed(error, "The decision was not sent");
  } finally {
    for (const li of targets) li.removeAttribute("aria-busy");
  }
  for (const result of results) {
    const li = cardOf(result.job_id, result.variant);
    const sent = decisions.find((d) => d.job_id === result.job_id && d.variant === result.variant);
    if (li && sent) showOutcome(li, result, sent);
  }
  updateCounts();
  if (!results.length) return;
  announce(targets.length === 1 ? `${titleOf(targets[0])}: ${targets[0].querySelector(".outcome").textContent}` : summary(results, decisions));
  if (auditOf && targets.includes(auditOf)) showAudit(auditOf);
  // on to the next image, unless the reviewer already moved elsewhere while this one was sent
  const decided = targets.length === 1 && !open(targets[0]) ? targets[0] : null;
  if (decided && (decided.contains(document.activeElement) || document.activeElement === document.body)) {
    nextOpen(decided);
  }
}

/** Move on to the next card still waiting for a decision (or the previous one). */
function nextOpen(li) {
  const list = cards();
  const at = list.indexOf(li);
  const after = list.slice(at + 1).find(open) || list.slice(0, at).reverse().find(open);
  makeCurrent(after || li);
}

function openReject(li, regenerate) {
  if (!open(li)) return;
  rejecting = li;
  new FieldErrors($("reason-form"), document.createElement("div")).clear();
  $("reason").value = "";
  $("regenerate").checked = regenerate;
  $("reason-title").textContent = regenerate ? "Reject and regenerate" : "Reject this image";
  $("reason-subject").textContent = titleOf(li);
  $("reason-dialog").showModal();
  $("reason").focus();
}

$("reason-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = $("reason").value.trim();
  if (!reason) {
    new FieldErrors($("reason-form"), document.createElement("div")).show("reason", "Say why it is rejected.");
    $("reason").focus();
    return;
  }
  const li = rejecting;
  rejecting = null;
  $("reason-dialog").close();
  await decide([li], "reject", { reason, regenerate: $("regenerate").checked });
});

$("reason-cancel").addEventListener("click", () => $("reason-dialog").close());
$("reason-dialog").addEventListener("close", () => {
  if (rejecting) rejecting.querySelector(".card").focus(); // canceled: back where it was
  rejecting = null;
});

async function approveSelected() {
  const chosen = selected();
  if (!chosen.length) {
    announce("No image is selected: press x on an image (or tick Select) first.");
    return;
  }
  await decide(chosen, "approve");
}

$("approve-selected").addEventListener("click", approveSelected);

function toggleSelected(li) {
  const box = li.querySelector(".select-box");
  if (box.disabled) return;
  box.checked = !box.checked;
  updateCounts();
}

// --- the audit trail ---

async function showAudit(li) {
  auditOf = li;
  const panel = $("audit");
  panel.hidden = false;
  $("audit-subject").textContent = `${titleOf(li)}, job ${li.dataset.job}`;
  $("audit-state").textContent = "Loading…";
  $("audit-entries").replaceChildren();
  let entries;
  try {
    entries = await api.audit(li.dataset.job, li.dataset.variant);
  } catch (error) {
    $("audit-state").textContent = `The trail could not be loaded: ${error.message}`;
    if (error instanceof ApiRefused && error.status === 401) failed(error, "");
    return;
  }
  if (auditOf !== li) return; // another card's trail was asked for meanwhile
  $("audit-entries").replaceChildren(...entries.map(renderAuditEntry));
  $("audit-state").textContent = entries.length
    ? `${entries.length} decision${entries.length === 1 ? "" : "s"} recorded.`
    : "No decision recorded yet.";
}

async function openAudit(li) {
  const shown = showAudit(li);
  $("audit-title").focus();
  await shown;
}

function closeAudit({ refocus = true } = {}) {
  const was = auditOf;
  auditOf = null;
  $("audit").hidden = true;
  if (refocus && was) was.querySelector(".card").focus();
}

$("audit-close").addEventListener("click", () => closeAudit());

// --- the help overlay ---

function openHelp() {
  returnFocus = document.activeElement;
  $("help").showModal();
  $("help-close").focus();
}

$("show-help").addEventListener("click", openHelp);
$("help-close").addEventListener("click", () => $("help").close());
$("help").addEventListener("close", () => returnFocus?.focus());

// --- buttons and keys ---

grid.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (button) run(button.dataset.action, button.closest("li.review-card"));
});

const ACTIONS = {
  next: () => move(1),
  previous: () => move(-1),
  down: () => move(columns()),
  up: () => move(-columns()),
  approve: (li) => li && decide([li], "approve"),
  reject: (li) => li && openReject(li, false),
  regenerate: (li) => li && openReject(li, true),
  select: (li) => li && toggleSelected(li),
  approveSelected: () => approveSelected(),
  audit: (li) => li && openAudit(li),
  filter: () => [...$("filters").querySelectorAll("input, select")].find((control) => !control.closest("[hidden]"))?.focus(),
  help: () => openHelp(),
};

/** The commands that decide on one image, and so wait for one still undecided. */
const DECIDING = new Set(["approve", "reject", "regenerate", "select"]);

function run(action, li) {
  if (DECIDING.has(action) && li && !open(li)) {
    announce(`${titleOf(li)} is decided already: ${li.querySelector(".outcome").textContent}`);
    return;
  }
  ACTIONS[action]?.(li);
}

/** Typing in these is typing, not a command (a checkbox or a button is not). */
const TYPING = "input:not([type=checkbox]), select, textarea";

document.addEventListener("keydown", (event) => {
  if (api === null || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
  if (document.querySelector("dialog[open]")) return; // a dialog has the keyboard (Esc closes it)
  if (event.key === "Escape" && !$("audit").hidden) {
    event.preventDefault();
    closeAudit();
    return;
  }
  if (event.target instanceof Element && event.target.closest(TYPING)) return;
  const action = config.keys[event.key];
  if (!action) return;
  event.preventDefault();
  const li = (document.activeElement?.closest("li.review-card")) || current();
  run(action, li);
});

// --- start ---

async function start() {
  const key = reviewKey.value;
  if (key) {
    const { identity: who, refusal } = await reviewKey.signIn(key);
    if (who) {
      signedIn(key, who);
      await load({ append: false });
    } else signOut(refusal);
  } else signOut();
  document.documentElement.dataset.ready = "true";
}

start();
