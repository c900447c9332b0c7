// The TypeScript client against a live mesh through Envoy's gRPC-Web filter on the TLS port.
// Run by tests/typescript/test_typescript_client.py, which starts the mesh and passes its URL.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code, ConduitError } from "../src/node.js";
import type { ReconnectInfo } from "../src/watch.js";
import { EventType, type Event } from "../src/gen/conduit/realtime/v1/realtime_pb.js";
import { baseUrl, client, publish, register, Relay, unique } from "./support.js";

let relay: Relay;

before(async () => {
  relay = await Relay.start(baseUrl());
});

after(async () => {
  await relay.close();
});

/** The next event of `events` that is not a heartbeat. */
async function nextEvent(events: AsyncIterator<Event>): Promise<Event> {
  for (;;) {
    const { value, done } = await events.next();
    assert.ok(!done, "the watch ended");
    if (value.type !== EventType.HEARTBEAT) {
      return value;
    }
  }
}

/** Waits for the first heartbeat: the server sends one as soon as the stream is live. */
async function live(events: AsyncIterator<Event>): Promise<void> {
  const { value, done } = await events.next();
  assert.ok(!done, "the watch ended before its first heartbeat");
  assert.equal(value.type, EventType.HEARTBEAT);
}

test("lists articles, including one it has just created as a registered user", async () => {
  const account = await register();
  const conduit = client(account.token);
  const slug = await publish(conduit, unique("Listed "), ["ts-client"]);
  const page = await client().articles.listArticles({ author: account.username, limit: 5 });
  assert.equal(page.articlesCount, 1);
  assert.deepEqual(page.articles.map((a) => a.slug), [slug]);
  assert.equal(page.articles[0]?.author?.username, account.username);
  assert.deepEqual(page.articles[0]?.tagList, ["ts-client"]);
  const all = await client().articles.listArticles({ limit: 20 });
  assert.ok(all.articlesCount >= 1 && all.articles.length >= 1);
});

test("the token provider is asked on every call; without a token the call is UNAUTHENTICATED", async () => {
  const account = await register();
  let token: string | undefined = account.token;
  let asked = 0;
  const conduit = client(() => {
    asked += 1;
    return token;
  });
  const me = await conduit.users.getCurrentUser({});
  assert.equal(me.user?.username, account.username);
  token = undefined;
  await assert.rejects(conduit.users.getCurrentUser({}), (error: unknown) => {
    assert.ok(error instanceof ConduitError);
    assert.equal(error.code, Code.Unauthenticated);
    assert.equal(error.codeName, "UNAUTHENTICATED");
    assert.equal(error.procedure, "conduit.users.v1.UsersService/GetCurrentUser");
    return true;
  });
  assert.equal(asked, 2);
});

test("an invalid article is INVALID_ARGUMENT with its field violations decoded", async () => {
  const conduit = client((await register()).token);
  await assert.rejects(conduit.articles.createArticle({ article: { title: "", description: "d", body: "b" } }),
    (error: unknown) => {
      assert.ok(error instanceof ConduitError);
      assert.equal(error.codeName, "INVALID_ARGUMENT");
      assert.ok(error.fieldViolations.some((v) => v.field.endsWith("title")),
        `no violation on title in ${JSON.stringify(error.fieldViolations)}`);
      assert.match(error.message, /^INVALID_ARGUMENT \(conduit\.articles\.v1\.ArticlesService\/CreateArticle\)/);
      return true;
    });
});

test("a missing article is NOT_FOUND with the service's ErrorInfo reason", async () => {
  await assert.rejects(client().articles.getArticle({ slug: unique("no-such-") }), (error: unknown) => {
    assert.ok(error instanceof ConduitError);
    assert.equal(error.code, Code.NotFound);
    assert.ok(error.reason, "ErrorInfo.reason is missing");
    assert.ok(error.domain, "ErrorInfo.domain is missing");
    return true;
  });
});

test("a watch receives an article created after it is live", async () => {
  const account = await register();
  const stop = new AbortController();
  const events = client().watchArticles({ author: account.username },
    { signal: stop.signal, includeHeartbeats: true })[Symbol.asyncIterator]();
  try {
    await live(events);
    const slug = await publish(client(account.token), unique("Watched "));
    const event = await nextEvent(events);
    assert.equal(event.type, EventType.ARTICLE_CREATED);
    assert.equal(event.resource.case, "article");
    assert.equal(event.resource.case === "article" ? event.resource.value.slug : "", slug);
  } finally {
    stop.abort();
  }
});

test("a watch whose connection is cut resumes from its last event: no gap, no duplicate", async () => {
  const account = await register();
  const author = client(account.token);
  const stop = new AbortController();
  const reconnects: ReconnectInfo[] = [];
  let duringCut: Promise<string> | undefined;
  const watch = client(undefined, { baseUrl: relay.url }).watchArticles({ author: account.username }, {
    signal: stop.signal,
    includeHeartbeats: true,
    onReconnect: (info) => {
      reconnects.push(info);
      // While the relay refuses connections, publish B; then let the watch back in.
      duringCut ??= publish(author, unique("B ")).finally(() => relay.unblock());
    },
  });
  const events = watch[Symbol.asyncIterator]();
  try {
    await live(events);
    const a = await publish(author, unique("A "));
    const seen = [slugOf(await nextEvent(events))];
    relay.block();
    relay.cut();
    seen.push(slugOf(await nextEvent(events)));
    const b = await duringCut;
    const c = await publish(author, unique("C "));
    seen.push(slugOf(await nextEvent(events)));
    assert.deepEqual(seen, [a, b, c]);
    assert.ok(reconnects.length >= 1 && watch.reconnects === reconnects.length);
    const first = reconnects[0];
    assert.ok(first !== undefined && first.cause !== "silent" && first.resumeToken !== "");
  } finally {
    stop.abort();
    relay.unblock();
  }
});

test("a watch that goes silent without closing reconnects within the heartbeat gap and misses nothing", async () => {
  const account = await register();
  const author = client(account.token);
  const stop = new AbortController();
  const causes: ReconnectInfo["cause"][] = [];
  // HTTP/1.1: one connection per stream, so the frozen one carries this watch only.
  const watch = client(undefined, { baseUrl: relay.url, httpVersion: "1.1" }).watchArticles(
    { author: account.username },
    { signal: stop.signal, includeHeartbeats: true, heartbeatGapMs: 5_000, onReconnect: (info) => causes.push(info.cause) },
  );
  const events = watch[Symbol.asyncIterator]();
  try {
    await live(events);
    relay.freeze();
    const slug = await publish(author, unique("Silent "));
    assert.equal(slugOf(await nextEvent(events)), slug);
    assert.ok(causes.includes("silent"), `reconnect causes: ${JSON.stringify(causes)}`);
  } finally {
    stop.abort();
  }
});

test("an HTTP/2 connection that goes silent is replaced by keepalive PINGs and its watch resumes", async () => {
  const account = await register();
  const author = client(account.token);
  const stop = new AbortController();
  const causes: ReconnectInfo["cause"][] = [];
  // The heartbeat gap is off: only the transport's PING timeout can notice the silence.
  const watch = client(undefined, { baseUrl: relay.url, keepalive: { pingIntervalMs: 1_000, pingTimeoutMs: 1_000 } })
    .watchArticles({ author: account.username },
      { signal: stop.signal, includeHeartbeats: true, heartbeatGapMs: 0, onReconnect: (info) => causes.push(info.cause) });
  const events = watch[Symbol.asyncIterator]();
  const opened = relay.connections;
  try {
    await live(events);
    const first = await publish(author, unique("Before "));
    assert.equal(slugOf(await nextEvent(events)), first);
    relay.freeze();
    const slug = await publish(author, unique("Frozen "));
    assert.equal(slugOf(await nextEvent(events)), slug);
    assert.ok(causes.length >= 1 && causes.every((cause) => cause !== "silent"), JSON.stringify(causes));
    assert.ok(relay.connections >= opened + 2, "the watch did not open a new connection");
  } finally {
    stop.abort();
  }
});

function slugOf(event: Event): string {
  assert.equal(event.type, EventType.ARTICLE_CREATED);
  return event.resource.case === "article" ? event.resource.value.slug : "";
}
