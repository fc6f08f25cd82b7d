// The reviewer's key: entered once, checked (GET /review/key says who it is, or why it may not
// review), then kept in this tab's sessionStorage only. It is a secret key, so it is never kept
// where another tab, a later visitor of this machine or a link could find it; a key refused later
// (401: revoked) is forgotten.

import { problemOf } from "./sse.js";

const STORAGE_KEY = "atelier.review.key";

export class ReviewKey {
  constructor(checkPath) {
    this.checkPath = checkPath;
  }

  /** The key kept in this tab, or null. */
  get value() {
    return sessionStorage.getItem(STORAGE_KEY);
  }

  /** Ask who `key` is; keep it if it may review.
   *  Resolves to {identity: {key_id, requester, admin}} or {refusal: "why"}. */
  async signIn(key) {
    let response;
    try {
      response = await fetch(this.checkPath, { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" });
    } catch {
      return { refusal: "The key could not be checked: no connection. Try again." };
    }
    if (response.ok) {
      const identity = await response.json();
      sessionStorage.setItem(STORAGE_KEY, key);
      return { identity };
    }
    const problem = await problemOf(response);
    this.forget();
    if (response.status === 401) return { refusal: "This key is unknown or revoked." };
    if (response.status === 429) return { refusal: "Too many attempts just now: wait a moment and try again." };
    return { refusal: problem?.detail || `The key was refused (${response.status}).` };
  }

  forget() {
    sessionStorage.removeItem(STORAGE_KEY);
  }
}
