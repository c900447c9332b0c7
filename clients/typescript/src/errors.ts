// Errors that say what went wrong: the gRPC code (number and canonical name) and the
// google.rpc details the services attach (ErrorInfo, BadRequest, RetryInfo).
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

/** gRPC's canonical code names, indexed by code number. */
const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
] as const;

export type GrpcCodeName = (typeof CODE_NAMES)[number];

// ConnectError's `instanceof` accepts any ConnectError (it checks a shape, so that two copies of
// the package agree); ConduitError's checks this brand instead, so wrapping is never skipped.
const BRAND = Symbol.for("@conduit-mesh/client/ConduitError");

/** One invalid field of a request (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
  readonly reason: string;
}

/**
 * A failed call. `code` is the gRPC status code (Connect's `Code` has the same numbers),
 * `codeName` its canonical name; `reason`/`domain` come from ErrorInfo, `fieldViolations`
 * from BadRequest and `retryDelayMs` from RetryInfo when the server sent them.
 */
export class ConduitError extends ConnectError {
  // `name` stays "ConnectError": Connect recognises its errors by that name (and passes them
  // through untouched); a ConduitError recognised as foreign would be wrapped and lose its fields.
  readonly codeName: GrpcCodeName;
  readonly reason: string | undefined;
  readonly domain: string | undefined;
  readonly errorMetadata: Readonly<Record<string, string>>;
  readonly fieldViolations: readonly FieldViolation[];
  readonly retryDelayMs: number | undefined;
  /** The RPC that failed, e.g. `conduit.articles.v1.ArticlesService/CreateArticle`. */
  readonly procedure: string | undefined;

  readonly [BRAND] = true;

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
  }

  constructor(source: ConnectError, procedure?: string) {
    super(source.rawMessage, source.code, source.metadata, undefined, source.cause ?? source);
    this.details = source.details;
    this.codeName = CODE_NAMES[source.code] ?? "UNKNOWN";
    this.procedure = procedure;
    const info = source.findDetails(ErrorInfoSchema)[0];
    this.reason = info?.reason || undefined;
    this.domain = info?.domain || undefined;
    this.errorMetadata = { ...(info?.metadata ?? {}) };
    this.fieldViolations = source.findDetails(BadRequestSchema).flatMap((bad) =>
      bad.fieldViolations.map((v) => ({ field: v.field, description: v.description, reason: v.reason })));
    const delay = source.findDetails(RetryInfoSchema)[0]?.retryDelay;
    this.retryDelayMs = delay === undefined ? undefined : Number(delay.seconds) * 1000 + delay.nanos / 1e6;
    const where = procedure === undefined ? "" : ` (${procedure})`;
    const because = this.reason === undefined ? "" : ` reason=${this.reason}`;
    const fields = this.fieldViolations.map((v) => `${v.field}: ${v.description}`).join("; ");
    this.message = `${this.codeName}${where}: ${source.rawMessage}${because}${fields ? ` [${fields}]` : ""}`;
  }
}

/** Any thrown value as a ConduitError (network failures become UNAVAILABLE or UNKNOWN). */
export function toConduitError(error: unknown, procedure?: string): ConduitError {
  if (error instanceof ConduitError) {
    return error;
  }
  return new ConduitError(ConnectError.from(error, Code.Unknown), procedure);
}

export function codeName(code: Code): GrpcCodeName {
  return CODE_NAMES[code] ?? "UNKNOWN";
}
