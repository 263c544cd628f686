// The GraphQL over HTTP conformance audit (graphql-http's auditServer),
// against the gateway at argv[2]. Prints one JSON line per audit:
// {"id", "name", "level" (MUST, SHOULD or MAY), "status" (ok, notice, warn or error), "reason"}.
// An optional argv[3] is sent as the Authorization header of every request.
import { auditServer } from 'graphql-http';

const [url, authorization] = process.argv.slice(2);
if (!url) {
  console.error('usage: node audit.mjs <graphql url> [authorization]');
  process.exit(2);
}
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  if (authorization) headers.set('authorization', authorization);
  return fetch(input, { ...init, headers });
};
for (const result of await auditServer({ url, fetchFn })) {
  const level = result.name.split(' ')[0];
  const reason = result.status === 'ok' ? undefined : result.reason;
  console.log(JSON.stringify({ id: result.id, name: result.name, level, status: result.status, reason }));
}
