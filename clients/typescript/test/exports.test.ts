// The public surface is pinned: a rename or a lost export is a failing test, not a surprised user.
import assert from "node:assert/strict";
import { test } from "node:test";

const SHARED = ["Code", "Conduit", "ConduitError", "EventType", "articles", "authInterceptor", "codeName",
  "conduitInterceptors", "connect", "errorInterceptor", "realtime", "resumableWatch", "search", "toConduitError",
  "users"];

test("the public exports of ./node and ./web are pinned", async () => {
  const node = await import("../src/node.js");
  const web = await import("../src/web.js");
  assert.deepEqual(Object.keys(node).sort(), [...SHARED, "DEFAULT_KEEPALIVE", "createNodeTransport"].sort());
  assert.deepEqual(Object.keys(web).sort(), [...SHARED, "createWebTransport"].sort());
  const conduit = node.connect({ baseUrl: "https://localhost:1" });
  assert.deepEqual(Object.keys(conduit).filter((key) => key !== "transport").sort(),
    ["admin", "articles", "auth", "comments", "ping", "profiles", "realtime", "search", "tags", "users"]);
});
