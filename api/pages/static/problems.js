// Errors shown where the person looks: each next to the field it names, the rest in a summary.
//
// A form marks each field's container with data-field="<path in the request body>" (for
// example "measurements.height") and gives it a .field-error element. A problem+json answer
// (RFC 9457) names fields by pydantic's loc: ["body", "measurements", "height"]; a garment's
// union tag ("listing", "attributes") is left out, so ["body", "garment", "attributes",
// "colour"] is "garment.colour". Messages are written as text, never as HTML.

/** Union tags pydantic puts in a loc after the field that holds the union. */
const UNION_TAGS = { garment: new Set(["listing", "attributes"]) };

/** The data-field path a problem's loc names. */
export function fieldPath(loc) {
  const parts = loc[0] === "body" ? loc.slice(1) : loc.slice();
  const path = [];
  for (const part of parts) {
    const previous = path[path.length - 1];
    if (UNION_TAGS[previous]?.has(part)) continue;
    path.push(String(part));
  }
  return path.join(".");
}

/** pydantic's message without its "Value error, " prefix. */
export function readable(message) {
  return String(message || "").replace(/^Value error, /, "");
}

/** Field errors and a summary for one form. */
export class FieldErrors {
  constructor(form, summary) {
    this.form = form;
    this.summary = summary;
  }

  container(path) {
    return this.form.querySelector(`[data-field="${CSS.escape(path)}"]`);
  }

  /** Forget every error shown. */
  clear() {
    for (const box of this.form.querySelectorAll("[data-field]")) this.unmark(box);
    this.summary.hidden = true;
    this.summary.textContent = "";
  }

  unmark(box) {
    const shown = box.querySelector(".field-error");
    if (shown) {
      shown.hidden = true;
      shown.textContent = "";
    }
    for (const control of box.querySelectorAll("input, select")) control.removeAttribute("aria-invalid");
  }

  /** Show `message` next to the field at `path`; false if the form has no such field. */
  show(path, message) {
    const box = this.container(path);
    const shown = box?.querySelector(".field-error");
    if (!shown) return false;
    shown.textContent = message;
    shown.hidden = false;
    for (const control of box.querySelectorAll("input, select")) control.setAttribute("aria-invalid", "true");
    return true;
  }

  /** Show the messages no field holds, in the summary. */
  summarize(messages) {
    if (!messages.length) return;
    this.summary.textContent = messages.join(" ");
    this.summary.hidden = false;
  }

  /** Show a problem+json answer: its field errors next to their fields, the rest summarized.
   *  Returns the first element worth moving the focus to. */
  showProblem(problem, fallback) {
    const unplaced = [];
    let first = null;
    for (const error of problem?.errors || []) {
      const path = fieldPath(error.loc || []);
      if (this.show(path, readable(error.msg))) first ??= this.firstControl(path);
      else unplaced.push(`${path || "request"}: ${readable(error.msg)}`);
    }
    if (!problem?.errors?.length) unplaced.push(problem?.detail || problem?.title || fallback);
    this.summarize(unplaced);
    return unplaced.length ? this.summary : first;
  }

  firstControl(path) {
    return this.container(path)?.querySelector("input:not([type=radio]), select, input:checked, input");
  }
}
