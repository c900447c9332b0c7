// Node: gRPC-Web over HTTP/2 (or HTTP/1.1) and TLS to the gateway. The gateway's CA is trusted
// like any other by Node: NODE_EXTRA_CA_CERTS, or `ca` here to trust that CA only.
import type { Transport } from "@connectrpc/connect";
import { createGrpcWebTransport, type Http2SessionOptions } from "@connectrpc/connect-node";
import { type ClientOptions, Conduit, conduitInterceptors } from "./client.js";

export interface NodeClientOptions extends ClientOptions {
  /** PEM of the CA to trust instead of Node's default store. */
  ca?: string | Buffer;
  /** Default "2": one connection multiplexes every call and watch. */
  httpVersion?: "1.1" | "2";
  /**
   * HTTP/2 keepalive: a PING after `pingIntervalMs` without data, the connection closed (and its
   * watches reconnected) when no answer comes within `pingTimeoutMs`. Defaults 30 s and 10 s.
   */
  keepalive?: Http2SessionOptions;
}

export const DEFAULT_KEEPALIVE: Readonly<Http2SessionOptions> = { pingIntervalMs: 30_000, pingTimeoutMs: 10_000 };

export function createNodeTransport(options: NodeClientOptions): Transport {
  const tls = options.ca === undefined ? {} : { ca: options.ca };
  const common = {
    baseUrl: options.baseUrl,
    interceptors: conduitInterceptors(options),
    ...(options.defaultTimeoutMs === undefined ? {} : { defaultTimeoutMs: options.defaultTimeoutMs }),
  };
  return options.httpVersion === "1.1"
    ? createGrpcWebTransport({ ...common, httpVersion: "1.1", nodeOptions: tls })
    : createGrpcWebTransport({ ...common, ...DEFAULT_KEEPALIVE, ...options.keepalive, httpVersion: "2", nodeOptions: tls });
}

/** A client of the gateway at `options.baseUrl`. */
export function connect(options: NodeClientOptions): Conduit {
  return new Conduit(createNodeTransport(options));
}

export * from "./index.js";
