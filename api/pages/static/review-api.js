// The review endpoints (/v1/review/...), called with the reviewer's key in the Authorization
// header. An error answer becomes an ApiRefused carrying the status and its problem+json.

import { problemOf } from "./sse.js";

export class ApiRefused extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || problem?.title || `the server answered ${status}`);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

export class ReviewApi {
  /** `paths`: {images, decisions, image} from the page's config; `key`: the reviewer's key. */
  constructor(paths, key) {
    this.paths = paths;
    this.key = key;
  }

  /** One page of pending images: {items, next_cursor}. `filters`: {requester, category, flagged}
   *  (empty values are left out). */
  list(filters, { cursor = null, limit }) {
    const query = new URLSearchParams({ status: "pending", limit: String(limit) });
    for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
    if (cursor) query.set("cursor", cursor);
    return this.call(`${this.paths.images}?${query}`);
  }

  /** Send decisions ([{job_id, variant, decision, reason, regenerate}]); resolves to the results. */
  async decide(decisions) {
    const answer = await this.call(this.paths.decisions, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ decisions }),
    });
    return answer.results;
  }

  /** The audit trail of one image: [{decision, reason, regenerate, reviewer, decided_at}]. */
  async audit(jobId, variant) {
    const answer = await this.call(`${this.paths.image}${encodeURIComponent(jobId)}/${variant}/audit`);
    return answer.entries;
  }

  async call(url, init = {}) {
    const headers = { Accept: "application/json", Authorization: `Bearer ${this.key}`, ...init.headers };
    const response = await fetch(url, { ...init, headers, cache: "no-store" });
    if (!response.ok) {
      throw new ApiRefused(response.status, await problemOf(response), response.headers.get("Retry-After"));
    }
    return response.json();
  }
}
