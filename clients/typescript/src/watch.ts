// Watches that survive disconnects: every event id (heartbeats included) is the position to
// resume from; a dropped, reset, cleanly ended or silent stream is reopened with it, so the
// caller sees every event once, in order (docs/decisions/0009-realtime.md for the server side).
import { Code } from "@connectrpc/connect";
import { type Event, EventType } from "./gen/conduit/realtime/v1/realtime_pb.js";
import { type ConduitError, toConduitError } from "./errors.js";

/** One message of a watch RPC: a single event, or a batch of them. */
export interface WatchMessage {
  event?: Event | undefined;
  events: Event[];
}

/** Opens one attempt of a watch from `resumeToken` ("" for new events only). */
export type OpenWatch = (resumeToken: string, signal: AbortSignal) => AsyncIterable<WatchMessage>;

/** What a reconnect hook is told. */
export interface ReconnectInfo {
  /** Reconnects so far in this watch, this one included. */
  readonly reconnects: number;
  /** The position the watch resumes from. */
  readonly resumeToken: string;
  /** Why the previous attempt ended: an error, "ended" (closed by the server) or "silent". */
  readonly cause: ConduitError | "ended" | "silent";
  /** The wait before reopening. */
  readonly delayMs: number;
}

export interface WatchOptions {
  /** Ends the watch (the iteration then finishes without an error). */
  signal?: AbortSignal;
  /** Continue after this event id instead of starting with new events. */
  resumeToken?: string;
  /** Yield heartbeats too (default: only real events). */
  includeHeartbeats?: boolean;
  /**
   * Reopen the stream when nothing (no event, no heartbeat) arrives for this long; 0 disables.
   * Default 45 s: three heartbeat intervals of the server's default 15 s.
   */
  heartbeatGapMs?: number;
  /** Give up after this many reconnects in a row without an event (default: never). */
  maxReconnects?: number;
  /** First and largest wait between reconnects (defaults 100 ms and 5 s, doubling). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called before each reconnect. */
  onReconnect?: (info: ReconnectInfo) => void;
}

/**
 * Codes after which a watch reconnects; any other error ends it (OUT_OF_RANGE: refetch).
 * CANCELLED is here because a stream reset by the network (HTTP/2 RST_STREAM CANCEL) reports
 * it; the caller's own cancellation (options.signal) is told apart before the code is read.
 */
const RECONNECT_CODES: ReadonlySet<Code> = new Set([
  Code.Canceled, Code.Unavailable, Code.ResourceExhausted, Code.Aborted, Code.Internal, Code.Unknown,
  Code.DeadlineExceeded,
]);

/** The resume position a watch reached, readable while it runs and after it ends. */
export interface ResumableWatch extends AsyncIterable<Event> {
  readonly resumeToken: string;
  readonly reconnects: number;
}

class Silent extends Error {}

function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** A watch that reopens `open` from the last position it saw until `options.signal` aborts. */
export function resumableWatch(open: OpenWatch, options: WatchOptions = {}): ResumableWatch {
  const state = { resumeToken: options.resumeToken ?? "", reconnects: 0 };
  const gapMs = options.heartbeatGapMs ?? 45_000;
  const initial = options.initialBackoffMs ?? 100;
  const largest = options.maxBackoffMs ?? 5_000;
  const userSignal = options.signal;
  const stopped = (): boolean => userSignal?.aborted === true;

  async function* events(): AsyncGenerator<Event> {
    let failures = 0;
    while (!stopped()) {
      const attempt = new AbortController();
      const stop = (): void => attempt.abort(userSignal?.reason);
      userSignal?.addEventListener("abort", stop, { once: true });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = (): void => {
        clearTimeout(timer);
        if (gapMs > 0) {
          timer = setTimeout(() => attempt.abort(new Silent("no message within the heartbeat gap")), gapMs);
        }
      };
      let cause: ReconnectInfo["cause"] = "ended";
      try {
        arm();
        for await (const message of open(state.resumeToken, attempt.signal)) {
          clearTimeout(timer);
          for (const event of message.event ? [message.event] : message.events) {
            if (event.eventId) {
              state.resumeToken = event.eventId;
            }
            failures = 0;
            if (event.type !== EventType.HEARTBEAT || options.includeHeartbeats === true) {
              yield event;
            }
          }
          arm();
        }
      } catch (error) {
        if (stopped()) {
          return;
        }
        if (attempt.signal.reason instanceof Silent) {
          cause = "silent";
        } else {
          const failure = toConduitError(error);
          if (!RECONNECT_CODES.has(failure.code)) {
            throw failure;
          }
          cause = failure;
        }
      } finally {
        clearTimeout(timer);
        userSignal?.removeEventListener("abort", stop);
        attempt.abort();
      }
      failures += 1;
      if (options.maxReconnects !== undefined && failures > options.maxReconnects) {
        throw cause instanceof Error ? cause : new Error(`watch gave up after ${failures - 1} reconnects (${cause})`);
      }
      const backoff = Math.min(largest, initial * 2 ** (failures - 1)) * (0.5 + Math.random() / 2);
      const hinted = typeof cause === "object" ? cause.retryDelayMs : undefined;
      const delayMs = Math.min(largest * 6, Math.max(backoff, hinted ?? 0));
      state.reconnects += 1;
      options.onReconnect?.({ reconnects: state.reconnects, resumeToken: state.resumeToken, cause, delayMs });
      await wait(delayMs, userSignal);
    }
  }

  return {
    get resumeToken() { return state.resumeToken; },
    get reconnects() { return state.reconnects; },
    [Symbol.asyncIterator]: () => events(),
  };
}
