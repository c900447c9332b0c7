// @conduit-mesh/client: the runtime-independent part. Import `connect` from
// `@conduit-mesh/client/node` or `@conduit-mesh/client/web` to get a ready client.
export { authInterceptor, type TokenProvider } from "./auth.js";
export { Conduit, type ClientOptions, conduitInterceptors } from "./client.js";
export { codeName, ConduitError, type FieldViolation, type GrpcCodeName, toConduitError } from "./errors.js";
export { errorInterceptor } from "./interceptors.js";
export {
  type OpenWatch,
  type ReconnectInfo,
  type ResumableWatch,
  resumableWatch,
  type WatchMessage,
  type WatchOptions,
} from "./watch.js";
export { Code } from "@connectrpc/connect";
export * as articles from "./gen/conduit/articles/v1/articles_pb.js";
export { type Event, EventType } from "./gen/conduit/realtime/v1/realtime_pb.js";
export * as realtime from "./gen/conduit/realtime/v1/realtime_pb.js";
export * as search from "./gen/conduit/search/v1/search_pb.js";
export * as users from "./gen/conduit/users/v1/users_pb.js";
