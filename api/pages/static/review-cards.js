// The console's cards and audit entries, cloned from the page's <template> elements and filled
// with textContent: nothing the API returns is ever parsed as HTML.

const $ = (id) => document.getElementById(id);

/** The id a card's elements are named after (job ids are hex, variants integers). */
export const cardId = (item) => `img-${item.job_id}-${item.variant}`;

const number = (value) => Number(value).toLocaleString("en", { maximumFractionDigits: 3 });
const capitalized = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** What a person calls the image: "Navy dress · image 2". */
export function describe(item, categories) {
  const attributes = item.attributes || {};
  const category = categories[attributes.category] || attributes.category || "";
  const what = [attributes.colour, category.toLowerCase()].filter(Boolean).join(" ") || `${item.kind} image`;
  return `${capitalized(what)} · image ${item.variant}`;
}

/** "review status · gate verdict" of an image, in words. */
function statusText(review, gate) {
  const status = review?.status || "pending";
  const verdict = gate ? (gate.passed ? "gate passed" : "gate failed") : "no gate scores";
  const reason = review?.reason ? ` (${review.reason})` : "";
  return `${status}${reason} · ${verdict}`;
}

function attributeRows(item, categories, showRequester) {
  const rows = [];
  const { category, colour, ...rest } = item.attributes || {};
  if (category) rows.push(["Category", categories[category] || category]);
  if (colour) rows.push(["Colour", colour]);
  for (const [name, value] of Object.entries(rest)) {
    const shown = value && typeof value === "object" ? Object.entries(value).map(([k, v]) => `${k}: ${v}`).join(", ") : String(value);
    if (shown) rows.push([capitalized(name.replaceAll("_", " ")), shown]);
  }
  rows.push([item.kind === "tryon" ? "Shopper" : "Listing", item.subject]);
  if (showRequester) rows.push(["Requester", item.requester]);
  rows.push(["Job", item.job_id]);
  return rows;
}

function fillGate(section, gate) {
  const verdict = section.querySelector(".gate-verdict");
  const table = section.querySelector(".gate-checks");
  if (!gate) {
    verdict.textContent = "No gate scores";
    table.hidden = true;
    return;
  }
  const failed = gate.checks.filter((check) => !check.passed).map((check) => check.name);
  const tries = gate.tries > 1 ? ` after ${gate.tries} tries` : "";
  verdict.textContent = gate.passed ? `Gate passed${tries}` : `Gate failed${tries}: ${failed.join(", ")}`;
  verdict.classList.toggle("failed", !gate.passed);
  const body = table.tBodies[0];
  for (const check of gate.checks) {
    const row = $("check-template").content.firstElementChild.cloneNode(true);
    const [name, score, threshold, result] = row.children;
    name.textContent = check.name;
    score.textContent = number(check.score);
    threshold.textContent = number(check.threshold);
    result.textContent = check.passed ? "passed" : "failed";
    row.classList.toggle("failed", !check.passed);
    body.append(row);
  }
}

function fillOthers(section, item) {
  const list = section.querySelector(".others-list");
  section.hidden = !item.others?.length;
  for (const other of item.others || []) {
    const entry = $("other-template").content.firstElementChild.cloneNode(true);
    entry.dataset.variant = String(other.variant);
    const img = entry.querySelector("img");
    img.src = other.url;
    img.alt = `Image ${other.variant}`;
    entry.querySelector(".other-text").textContent = `Image ${other.variant}: ${statusText(other.review, other.gate)}`;
    entry.classList.toggle("flagged", other.gate?.passed === false);
    list.append(entry);
  }
}

/** A card (an <li>) for one ReviewItem. */
export function renderCard(item, { categories, showRequester }) {
  const li = $("card-template").content.firstElementChild.cloneNode(true);
  const id = cardId(item);
  const card = li.querySelector(".card");
  li.dataset.job = item.job_id;
  li.dataset.variant = String(item.variant);
  li.classList.toggle("flagged", item.gate?.passed === false);
  const title = card.querySelector(".card-title");
  title.id = `${id}-title`;
  title.textContent = describe(item, categories);
  card.setAttribute("aria-labelledby", title.id);
  const outcome = card.querySelector(".outcome");
  outcome.id = `${id}-outcome`;
  card.setAttribute("aria-describedby", outcome.id);
  for (const button of card.querySelectorAll(".card-actions button")) button.setAttribute("aria-describedby", title.id);
  card.querySelector(".select-box").setAttribute("aria-describedby", title.id);

  const img = card.querySelector(".card-img");
  img.alt = `${describe(item, categories)}, for ${item.kind === "tryon" ? "shopper" : "listing"} ${item.subject}`;
  img.addEventListener("error", () => {
    img.hidden = true;
    card.querySelector(".img-error").hidden = false;
  });
  img.src = item.url;

  const attributes = card.querySelector(".card-attrs");
  for (const [name, value] of attributeRows(item, categories, showRequester)) {
    const row = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value;
    if (name === "Job") dd.className = "job-id";
    row.append(dt, dd);
    attributes.append(row);
  }
  fillGate(card.querySelector(".gate"), item.gate);
  fillOthers(card.querySelector(".others"), item);
  return li;
}

/** Show, on `li`'s "other images" list, what was just decided about `variant` of its job. */
export function updateOther(li, variant, review) {
  const entry = li.querySelector(`.other[data-variant="${CSS.escape(String(variant))}"] .other-text`);
  if (!entry) return;
  const verdict = entry.textContent.split(" · ").pop();
  entry.textContent = `Image ${variant}: ${review.status}${review.reason ? ` (${review.reason})` : ""} · ${verdict}`;
}

const DECIDED = { approve: "Approved", reject: "Rejected" };

/** An <li> for one audit entry. */
export function renderAuditEntry(entry) {
  const li = $("audit-entry-template").content.firstElementChild.cloneNode(true);
  const what = DECIDED[entry.decision] || capitalized(String(entry.decision));
  const regenerated = entry.regenerate ? ", regenerate" : "";
  const reason = entry.reason ? `: ${entry.reason}` : "";
  li.querySelector(".audit-what").textContent = `${what}${regenerated}${reason}`;
  const when = entry.decided_at
    ? new Date(entry.decided_at).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "long" })
    : "";
  li.querySelector(".audit-meta").textContent = `by ${entry.reviewer || "unknown"}${when ? `, ${when}` : ""}`;
  return li;
}
