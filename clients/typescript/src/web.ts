// Browsers: gRPC-Web over fetch to the gateway's TLS port (CORS allows the page's origin;
// CONDUIT_CORS_ORIGINS on the mesh). The browser's own trust store validates the certificate.
import type { Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { type ClientOptions, Conduit, conduitInterceptors } from "./client.js";

export function createWebTransport(options: ClientOptions): Transport {
  return createGrpcWebTransport({
    baseUrl: options.baseUrl,
    interceptors: conduitInterceptors(options),
    ...(options.defaultTimeoutMs === undefined ? {} : { defaultTimeoutMs: options.defaultTimeoutMs }),
  });
}

/** A client of the gateway at `options.baseUrl`, from a page. */
export function connect(options: ClientOptions): Conduit {
  return new Conduit(createWebTransport(options));
}

export * from "./index.js";
