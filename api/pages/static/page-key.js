// The page's API key: the operator's (written into the page by the server, which refuses to
// serve a secret one), or one entered once in the page and kept in this browser. An entered key
// is checked first (GET /try-on/key: 204 only for a publishable key with the page's scopes) and
// kept only then; a key refused later (401: revoked) is forgotten.

import { problemOf } from "./sse.js";

const STORAGE_KEY = "atelier.tryon.key";

/** The key's public part, to show which key is in use (never the secret). */
export function keyLabel(key) {
  const match = /^atl_([0-9a-f]+)_/.exec(key);
  return match ? `atl_${match[1]}_…` : "a key";
}

export class PageKey {
  constructor(configured, checkPath) {
    this.configured = configured;
    this.checkPath = checkPath;
  }

  /** The key to use now, or null when none is configured or kept. */
  get value() {
    return this.configured || localStorage.getItem(STORAGE_KEY);
  }

  get entered() {
    return !this.configured && this.value !== null;
  }

  /** Ask the server whether `key` may be kept by the page; keep it if so.
   *  Resolves to null when kept, else to the reason it was refused. */
  async enter(key) {
    let response;
    try {
      response = await fetch(this.checkPath, { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" });
    } catch {
      return "The key could not be checked: no connection. Try again.";
    }
    if (response.status === 204) {
      localStorage.setItem(STORAGE_KEY, key);
      return null;
    }
    const problem = await problemOf(response);
    if (response.status === 401) return "This key is unknown or revoked.";
    return problem?.detail || `The key was refused (${response.status}).`;
  }

  /** Forget a kept key (a configured one stays). */
  forget() {
    localStorage.removeItem(STORAGE_KEY);
  }
}
