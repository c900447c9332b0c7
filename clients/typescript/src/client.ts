// The typed facade: one Connect client per public service of the contract, the shared
// interceptors, and resumable watches over the realtime RPCs. Transport-agnostic: `./node`
// and `./web` build the gRPC-Web transport for each runtime.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { authInterceptor, type TokenProvider } from "./auth.js";
import { AdminService, AuthService, ProfilesService, UsersService } from "./gen/conduit/users/v1/users_pb.js";
import { ArticlesService, CommentsService, PingService, TagsService } from "./gen/conduit/articles/v1/articles_pb.js";
import {
  RealtimeService,
  type WatchArticleRequestSchema,
  type WatchArticlesRequestSchema,
  type WatchFeedRequestSchema,
} from "./gen/conduit/realtime/v1/realtime_pb.js";
import { SearchService } from "./gen/conduit/search/v1/search_pb.js";
import { errorInterceptor } from "./interceptors.js";
import { type ResumableWatch, resumableWatch, type WatchOptions } from "./watch.js";

/** Options common to every runtime. */
export interface ClientOptions {
  /** The gateway's TLS address, e.g. `https://localhost:8443`. */
  baseUrl: string;
  /** A token, or a function returning the current one (called on every call and reconnect). */
  token?: string | TokenProvider;
  /** Run after the built-in ones (errors, auth), closest to the network last. */
  interceptors?: Interceptor[];
  /** Per-call timeout when a call passes none (default: none). */
  defaultTimeoutMs?: number;
}

/** The interceptors every transport gets, in order: errors outermost, then auth, then the user's. */
export function conduitInterceptors(options: Pick<ClientOptions, "token" | "interceptors">): Interceptor[] {
  const { token } = options;
  const provider: TokenProvider | undefined = typeof token === "string" ? () => token : token;
  return [errorInterceptor, ...(provider ? [authInterceptor(provider)] : []), ...(options.interceptors ?? [])];
}

type Resumable<T> = Omit<T, "resumeToken" | "batched" | "$typeName">;

/** A client of every public Conduit service over one transport. */
export class Conduit {
  readonly users: Client<typeof UsersService>;
  readonly profiles: Client<typeof ProfilesService>;
  readonly auth: Client<typeof AuthService>;
  readonly admin: Client<typeof AdminService>;
  readonly articles: Client<typeof ArticlesService>;
  readonly comments: Client<typeof CommentsService>;
  readonly tags: Client<typeof TagsService>;
  readonly ping: Client<typeof PingService>;
  readonly search: Client<typeof SearchService>;
  readonly realtime: Client<typeof RealtimeService>;

  constructor(readonly transport: Transport) {
    this.users = createClient(UsersService, transport);
    this.profiles = createClient(ProfilesService, transport);
    this.auth = createClient(AuthService, transport);
    this.admin = createClient(AdminService, transport);
    this.articles = createClient(ArticlesService, transport);
    this.comments = createClient(CommentsService, transport);
    this.tags = createClient(TagsService, transport);
    this.ping = createClient(PingService, transport);
    this.search = createClient(SearchService, transport);
    this.realtime = createClient(RealtimeService, transport);
  }

  /** New articles (optionally by tag or author), resumed across disconnects. */
  watchArticles(request: Resumable<MessageInitShape<typeof WatchArticlesRequestSchema>> = {},
                options: WatchOptions = {}): ResumableWatch {
    return resumableWatch((resumeToken, signal) =>
      this.realtime.watchArticles({ ...request, resumeToken, batched: true }, { signal }), options);
  }

  /** One article's edits, deletion, comments and favorites, resumed across disconnects. */
  watchArticle(request: Resumable<MessageInitShape<typeof WatchArticleRequestSchema>>,
               options: WatchOptions = {}): ResumableWatch {
    return resumableWatch((resumeToken, signal) =>
      this.realtime.watchArticle({ ...request, resumeToken, batched: true }, { signal }), options);
  }

  /** New articles by the authors the caller follows (needs a token), resumed across disconnects. */
  watchFeed(options: WatchOptions = {}): ResumableWatch {
    const request: Resumable<MessageInitShape<typeof WatchFeedRequestSchema>> = {};
    return resumableWatch((resumeToken, signal) =>
      this.realtime.watchFeed({ ...request, resumeToken, batched: true }, { signal }), options);
  }
}
