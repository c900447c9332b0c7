// The resumable watch's decisions on scripted streams (no network): which endings reconnect,
// from which position, and which end the watch.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ConduitError } from "../src/errors.js";
import { type ReconnectInfo, resumableWatch, type WatchMessage } from "../src/watch.js";
import { type Event, EventSchema, EventType } from "../src/gen/conduit/realtime/v1/realtime_pb.js";
import { RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";

function event(id: string, type = EventType.ARTICLE_CREATED): Event {
  return create(EventSchema, { eventId: id, type });
}

/** An `open` that plays one script per attempt and records the resume token of each. */
function scripted(attempts: Array<Array<WatchMessage | Error>>): {
  tokens: string[];
  open: (token: string, signal: AbortSignal) => AsyncIterable<WatchMessage>;
} {
  const tokens: string[] = [];
  return {
    tokens,
    open: (token, signal) => {
      tokens.push(token);
      const script = attempts.shift() ?? [];
      return (async function* () {
        for (const step of script) {
          if (step instanceof Error) {
            throw step;
          }
          yield step;
        }
        // The last attempt stays open until it is aborted, as Connect's streams do.
        if (attempts.length === 0) {
          await new Promise((_, reject) => {
            const aborted = (): void => reject(new ConnectError("aborted", Code.Canceled));
            if (signal.aborted) {
              aborted();
            }
            signal.addEventListener("abort", aborted, { once: true });
          });
        }
      })();
    },
  };
}

async function take(watch: AsyncIterable<Event>, count: number): Promise<string[]> {
  const ids: string[] = [];
  for await (const item of watch) {
    ids.push(item.eventId);
    if (ids.length === count) {
      break;
    }
  }
  return ids;
}

test("reconnects after UNAVAILABLE, a clean end and a batch, from the last id seen (heartbeats too)", async () => {
  const { tokens, open } = scripted([
    [{ events: [event("1"), event("2")] }, { event: event("3", EventType.HEARTBEAT), events: [] },
      new ConnectError("gone", Code.Unavailable)],
    [{ event: event("4"), events: [] }],
    [{ event: event("5"), events: [] }],
  ]);
  const causes: ReconnectInfo["cause"][] = [];
  const watch = resumableWatch(open, { initialBackoffMs: 1, onReconnect: (info) => causes.push(info.cause) });
  assert.deepEqual(await take(watch, 4), ["1", "2", "4", "5"]);
  assert.deepEqual(tokens, ["", "3", "4"]);
  assert.equal(causes.length, 2);
  assert.ok(causes[0] instanceof ConduitError && causes[0].codeName === "UNAVAILABLE");
  assert.equal(causes[1], "ended");
  assert.equal(watch.resumeToken, "5");
});

test("OUT_OF_RANGE ends the watch with a ConduitError: the caller must refetch", async () => {
  const { open } = scripted([[{ event: event("1"), events: [] }, new ConnectError("too old", Code.OutOfRange)]]);
  const watch = resumableWatch(open, { initialBackoffMs: 1, resumeToken: "0" });
  await assert.rejects(take(watch, 2), (error: unknown) =>
    error instanceof ConduitError && error.codeName === "OUT_OF_RANGE");
});

test("the server's RetryInfo delay is waited before the reconnect", async () => {
  const hint = create(RetryInfoSchema, { retryDelay: { seconds: 0n, nanos: 250_000_000 } });
  const busy = new ConnectError("slow consumer", Code.ResourceExhausted);
  // As details arrive from the wire (grpc-status-details-bin): type name and bytes.
  const packed = anyPack(RetryInfoSchema, hint);
  busy.details = [{ type: packed.typeUrl.slice(packed.typeUrl.lastIndexOf("/") + 1), value: packed.value }];
  const { open } = scripted([[busy], [{ event: event("9"), events: [] }]]);
  const delays: number[] = [];
  const watch = resumableWatch(open, { initialBackoffMs: 1, onReconnect: (info) => delays.push(info.delayMs) });
  assert.deepEqual(await take(watch, 1), ["9"]);
  assert.deepEqual(delays, [250]);
});

test("aborting the caller's signal ends the iteration without an error", async () => {
  const { open } = scripted([[{ event: event("1"), events: [] }]]);
  const stop = new AbortController();
  const seen: string[] = [];
  for await (const item of resumableWatch(open, { signal: stop.signal })) {
    seen.push(item.eventId);
    stop.abort();
  }
  assert.deepEqual(seen, ["1"]);
});
