// What came of decisions, in words: on each card, and in one sentence for the live region. The
// outcomes are those of POST /v1/review/decisions (api/review/resources.py: DecisionResult).

/** Outcomes after which the image may be decided again: the decision broke a rule, or nothing
 *  applied because a service behind the API failed. */
export const RETRYABLE = new Set(["invalid", "unavailable"]);

/** What a decision's result says of its job, by the job's state. */
const JOB_STATES = {
  awaiting_review: " The job waits for its other images.",
  approved: " The job is approved: its approved images get links.",
  rejected: " The job is rejected.",
  canceled: " The job is canceled.",
};

/** How a card, and a summary, name an outcome other than "applied". */
const OUTCOME_LABELS = {
  conflict: ["Not applied (conflict)", "not applied (conflict)"],
  not_found: ["Not found", "not found"],
  invalid: ["Refused", "refused"],
  unavailable: ["Not applied (a service failed; decide again)", "not applied (a service failed)"],
};

/** What a card says once its decision is back. */
export function outcomeText(result, decision) {
  const state = JOB_STATES[result.job_state] ?? (result.job_state ? ` The job is ${result.job_state}.` : "");
  if (result.outcome === "applied") {
    if (decision.decision === "approve") return `Approved.${state}`;
    if (decision.regenerate) return `Rejected (${decision.reason}): regenerating; the new image comes back for review.`;
    return `Rejected (${decision.reason}).${state}`;
  }
  return `${OUTCOME_LABELS[result.outcome]?.[0] || result.outcome}: ${result.detail || "no detail"}`;
}

/** One sentence for what came back: "Approved 3 images. 1 not applied (conflict): …" */
export function summary(results, decisions) {
  const applied = results.filter((r) => r.outcome === "applied").length;
  const parts = [];
  if (applied) {
    const verb = decisions[0].decision === "approve" ? "Approved" : decisions[0].regenerate ? "Rejected for regeneration" : "Rejected";
    parts.push(`${verb} ${applied} image${applied === 1 ? "" : "s"}.`);
  }
  for (const [outcome, [, word]] of Object.entries(OUTCOME_LABELS)) {
    const these = results.filter((r) => r.outcome === outcome);
    if (these.length) parts.push(`${these.length} ${word}: ${these[0].detail || "no detail"}.`);
  }
  return parts.join(" ");
}
