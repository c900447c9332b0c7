// Subscribes with the graphql-ws client (over the ws package) and prints every result as one JSON line.
// Usage: NODE_PATH=<cache>/node_modules NODE_EXTRA_CA_CERTS=<ca.pem> node subscribe.cjs <wss url> <query>
//        [variables JSON] [Authorization value]; stops after CONDUIT_RESULTS results (default 2).
'use strict';
const { createClient } = require('graphql-ws');
const WebSocket = require('ws');

const [url, query, variables = '{}', authorization = ''] = process.argv.slice(2);
const wanted = Number(process.env.CONDUIT_RESULTS || '2');
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: authorization ? { Authorization: authorization } : {},
  retryAttempts: 0,
});
let seen = 0;
const stop = client.subscribe({ query, variables: JSON.parse(variables) }, {
  next: (result) => {
    process.stdout.write(JSON.stringify(result) + '\n');
    seen += 1;
    if (seen >= wanted) {
      stop();
      client.dispose().then(() => process.exit(0));
    }
  },
  error: (error) => {
    process.stderr.write('subscription failed: ' + (error && error.message ? error.message : JSON.stringify(error)) + '\n');
    process.exit(1);
  },
  complete: () => process.exit(seen >= wanted ? 0 : 2),
});
