// Verify an Atelier callback with npm's `standardwebhooks` package alone (no Atelier install).
//
// Atelier signs its callbacks per Standard Webhooks (https://www.standardwebhooks.com), so a
// Node receiver needs only `npm install standardwebhooks` (pinned in package.json here). In a
// web framework, pass the raw request body (a string, before JSON parsing) and the request
// headers to verifyCallback.
//
// From a shell, for trying it out (the body on stdin, the three headers as arguments):
//
//   WEBHOOK_SECRET=whsec_... node node_receiver.mjs \
//       webhook-id=msg_... webhook-timestamp=1700000000 webhook-signature=v1,... < body.json
//
// prints the event type (`job.succeeded`) and exits 0, or prints why and exits 1.

import { readFileSync } from "node:fs";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

// The event ({type, timestamp, data}) if `secret` signed `body` within the last five minutes;
// throws WebhookVerificationError otherwise. Header names must be lowercase.
export function verifyCallback(body, headers, secret) {
  return new Webhook(secret).verify(body, headers);
}

function main(args) {
  const headers = Object.fromEntries(
    args.map((arg) => {
      const at = arg.indexOf("=");
      return [arg.slice(0, at).toLowerCase(), arg.slice(at + 1)];
    }),
  );
  const body = readFileSync(0, "utf8");
  try {
    const event = verifyCallback(body, headers, process.env.WEBHOOK_SECRET);
    // de-duplicate on headers["webhook-id"] before acting: a redelivery repeats it
    console.log(event.type);
    return 0;
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    console.error(`refused: ${error.message}`);
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));
