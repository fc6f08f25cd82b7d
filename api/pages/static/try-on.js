// The try-on page: check the form as the server does, submit it with the page's publishable key,
// show the server's errors next to their fields, then follow the job's events until the
// picture arrives. What the form allows comes from the server (#page-config), which reads it
// from the serving contract.

import { FieldErrors } from "./problems.js";
import { PageKey, keyLabel } from "./page-key.js";
import { followEvents, problemOf } from "./sse.js";

const config = JSON.parse(document.getElementById("page-config").textContent);
const $ = (id) => document.getElementById(id);
const form = $("tryon-form");
const errors = new FieldErrors(form, $("form-error"));
const pageKey = new PageKey(config.key, config.paths.keyCheck);
const jobIdPattern = new RegExp(config.jobIdPattern);
/** the states after which a job changes no more (core/contracts/jobs.py, via #page-config) */
const TERMINAL = new Set(config.terminalStates);
const SHOPPER_STORAGE_KEY = "atelier.tryon.shopper";

let following = null; // the AbortController of the job followed now
let units = "metric";

// --- the key ---

function showKeyState() {
  const key = pageKey.value;
  $("connect").hidden = key !== null;
  $("key-status").hidden = !pageKey.entered;
  if (pageKey.entered) $("key-status-text").textContent = `Connected with key ${keyLabel(key)}`;
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("page-key");
  const box = new FieldErrors($("key-form"), $("key-form-error"));
  box.clear();
  const key = input.value.trim();
  if (!key) {
    box.show("key", "Enter a publishable key.");
    input.focus();
    return;
  }
  const refusal = await pageKey.enter(key);
  input.value = ""; // a refused key is not kept, not even in the field
  if (refusal) {
    box.show("key", refusal);
    input.focus();
    return;
  }
  showKeyState();
  form.elements["measurements.height"].focus();
});

$("forget-key").addEventListener("click", () => {
  pageKey.forget();
  showKeyState();
  $("page-key").focus();
});

// --- units and garment source ---

const fmt = (value) => String(Math.round(value * 10) / 10);

/** Show `system`'s units and ranges; with `convert`, convert the values typed in the other. */
function applyUnits(system, { convert }) {
  for (const m of config.measurements) {
    const range = m[system];
    const input = form.elements[`measurements.${m.name}`];
    if (convert && input.value !== "" && !Number.isNaN(input.valueAsNumber)) {
      input.value = fmt((input.valueAsNumber * m[units].factor) / range.factor);
    }
    input.min = range.shown_low;
    input.max = range.shown_high;
    document.querySelector(`[data-unit-of="${m.name}"]`).textContent = `(${range.unit})`;
    $(`m-${m.name}-range`).textContent = `${fmt(range.shown_low)}–${fmt(range.shown_high)} ${range.unit}`;
  }
  units = system;
}

function applySource(source) {
  $("garment-attributes").hidden = source !== "attributes";
  $("garment-listing").hidden = source !== "listing";
}

form.addEventListener("change", (event) => {
  if (event.target.name === "measurements.unit_system") applyUnits(event.target.value, { convert: true });
  if (event.target.name === "garment.source") applySource(event.target.value);
});

// --- the checks the server makes (core/contracts/v1.py), in the browser ---

/** [path, message] for each field the server would refuse. */
function check() {
  const found = [];
  for (const m of config.measurements) {
    const input = form.elements[`measurements.${m.name}`];
    const range = m[units];
    const path = `measurements.${m.name}`;
    if (input.validity.badInput) found.push([path, "Enter a number."]);
    else if (input.value.trim() === "") found.push([path, `Enter your ${m.label.toLowerCase()}.`]);
    else {
      const metric = input.valueAsNumber * range.factor; // as the server converts it
      if (!(m.low <= metric && metric <= m.high)) {
        const allowed = `${fmt(range.shown_low)}–${fmt(range.shown_high)} ${range.unit}`;
        found.push([path, `Must be within ${allowed}; got ${input.value} ${range.unit}.`]);
      }
    }
  }
  const source = form.elements["garment.source"].value;
  if (source === "listing") {
    if (!jobIdPattern.test(form.elements["garment.job_id"].value.trim())) {
      found.push(["garment.job_id", "Enter the listing job's id: 32 lowercase hexadecimal digits."]);
    }
    const variant = form.elements["garment.variant"].valueAsNumber;
    if (!Number.isInteger(variant) || variant < 0 || variant > config.variantMax) {
      found.push(["garment.variant", `Choose an image from 0 to ${config.variantMax}.`]);
    }
  } else if (!form.elements["garment.colour"].value) {
    found.push(["garment.colour", "Choose a colour."]);
  }
  if (!form.elements.size.value) found.push(["size", "Choose a size."]);
  return found;
}

function requestBody() {
  const measurements = { unit_system: units };
  for (const m of config.measurements) measurements[m.name] = form.elements[`measurements.${m.name}`].valueAsNumber;
  const source = form.elements["garment.source"].value;
  const garment =
    source === "listing"
      ? { source, job_id: form.elements["garment.job_id"].value.trim(), variant: form.elements["garment.variant"].valueAsNumber }
      : { source, category: form.elements["garment.category"].value, colour: form.elements["garment.colour"].value };
  return { shopper_ref: shopperRef(), measurements, garment, size: form.elements.size.value };
}

function describe(body) {
  const garment = body.garment.source === "listing"
    ? "the chosen product"
    : `${body.garment.colour} ${form.elements["garment.category"].selectedOptions[0].textContent.toLowerCase()}`;
  return `Try-on: ${garment} in size ${body.size}`;
}

// --- submit and follow ---

function randomId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An opaque reference for this browser: no personal data, the same on each visit. */
function shopperRef() {
  let ref = localStorage.getItem(SHOPPER_STORAGE_KEY);
  if (!ref) {
    ref = randomId("shopper-");
    localStorage.setItem(SHOPPER_STORAGE_KEY, ref);
  }
  return ref;
}

function progress(text, state) {
  $("progress").textContent = text;
  if (state) $("result").dataset.state = state;
}

function setBusy(busy) {
  $("submit").disabled = busy;
  $("progress-bar").hidden = !busy;
  $("result").setAttribute("aria-busy", String(busy));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errors.clear();
  const found = check();
  if (found.length) {
    for (const [path, message] of found) errors.show(path, message);
    errors.firstControl(found[0][0])?.focus();
    progress("Please correct the marked fields.", "invalid");
    return;
  }
  const key = pageKey.value;
  if (!key) {
    errors.summarize(["Connect a publishable key first."]);
    $("page-key").focus();
    return;
  }
  following?.abort();
  $("picture").hidden = true;
  const body = requestBody();
  setBusy(true);
  progress("Sending your request…", "sending");
  let response;
  try {
    response = await fetch(config.paths.submit, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${key}`,
        "Content-Type": "application/json",
        "Idempotency-Key": randomId("tryon-"), // a double submit makes one job
      },
      body: JSON.stringify(body),
    });
  } catch {
    setBusy(false);
    progress("No connection: nothing was sent. Please try again.", "error");
    return;
  }
  if (!response.ok) {
    setBusy(false);
    refused(response, await problemOf(response));
    return;
  }
  const job = await response.json();
  await follow(job.id, key, describe(body));
});

function refused(response, problem) {
  if (response.status === 401 && pageKey.entered) {
    pageKey.forget();
    showKeyState();
  }
  let fallback = `The request was refused (${response.status}).`;
  if (response.status === 429) fallback = `Too many try-ons just now: try again in ${response.headers.get("Retry-After") || "a few"} seconds.`;
  if (response.status === 503) fallback = "The service is busy: try again in a moment.";
  const focus = errors.showProblem(response.status === 422 ? problem : { detail: problem?.detail || fallback }, fallback);
  focus?.focus();
  const where = response.status === 422 ? ": see the marked fields" : "";
  progress(`Your request was not accepted${where}.`, "refused");
}

async function follow(jobId, key, caption) {
  const controller = new AbortController();
  following = controller;
  progress("Queued: waiting for a free renderer…", "queued");
  try {
    await followEvents(`${config.paths.jobs}${encodeURIComponent(jobId)}/events`, {
      headers: { Authorization: `Bearer ${key}` },
      signal: controller.signal,
      isLast: (event) => TERMINAL.has(JSON.parse(event.data).data.state),
      onReconnect: () => progress("Connection lost: reconnecting…"),
      onEvent: (event) => onJobEvent(JSON.parse(event.data).data, caption),
    });
  } catch (error) {
    if (!controller.signal.aborted) progress(`We lost track of your try-on: ${error.message}`, "error");
  } finally {
    if (following === controller) {
      following = null;
      setBusy(false);
    }
  }
}

/** Show what a JobEvent's data says, by the state it reports (each event type reports one). */
function onJobEvent(data, caption) {
  const state = data.state;
  if (data.results?.length) showPicture(data.results[0].url, caption);
  else if (state === "queued") progress("Queued: waiting for a free renderer…", state);
  else if (state === "running") {
    const again = data.attempts > 1 ? ` (attempt ${data.attempts})` : "";
    progress(`Rendering your try-on${again}…`, state);
  } else if (state === "awaiting_review") progress("Your picture is being checked before it is shown…", state);
  else if (state === "failed") progress(`We could not render your try-on: ${data.error?.message || "unknown error"}`, state);
  else if (state === "rejected") progress("Your picture did not pass its check. Please try again.", state);
  else if (state === "canceled") progress("Your try-on was canceled.", state);
  else if (TERMINAL.has(state)) progress(`Your try-on ended (${state}) without a picture.`, state);
}

function showPicture(url, caption) {
  const img = $("picture-img");
  img.onload = () => {
    $("picture").hidden = false;
    progress("Your try-on is ready.", "shown");
  };
  img.onerror = () => progress("The picture was made but could not be loaded. Please try again.", "error");
  img.alt = caption;
  $("picture-caption").textContent = caption;
  img.src = url;
}

// --- start ---

applyUnits(form.elements["measurements.unit_system"].value, { convert: false });
applySource(form.elements["garment.source"].value);
showKeyState();
document.documentElement.dataset.ready = "true";
