"""Settings of one process: created once in `main`, passed down, never imported as a global."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conduit_server.runtime.webhook_settings import WebhooksSettings

ServiceName = Literal["users", "articles", "search", "realtime", "webhooks"]
SERVICES: tuple[ServiceName, ...] = ("users", "articles", "search", "realtime", "webhooks")


class RealtimeSettings(BaseModel):
    """Knobs of the realtime service (`CONDUIT_REALTIME__<NAME>`). Defaults suit production; tests shorten
    the intervals and shrink the queues."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Streams the one reader of the process follows (the outbox relays' names); "" = no users stream.
    articles_stream: str = "conduit:events:articles"
    users_stream: str = "conduit:events:users"
    # An idle stream gets a heartbeat this often.
    heartbeat_seconds: float = 15.0
    # Events queued for one stream before it counts as too slow and is ended (RESOURCE_EXHAUSTED).
    # A queued event costs ~100 bytes per stream (the serialized message is shared by all streams);
    # at least 4 reads' worth, so that one burst read at once does not cut off healthy streams.
    max_queued_per_watcher: int = 1_000
    # Open streams per process; more are refused with RESOURCE_EXHAUSTED (memory stays bounded).
    max_watchers: int = 20_000
    # Open streams per client (a signed-in user, a service account, else one client IP), so one client
    # cannot take every stream; more are refused with RESOURCE_EXHAUSTED + RetryInfo (REST: 429).
    max_watchers_per_client: int = 100
    # The Retry-After of a refused stream.
    refused_stream_retry_seconds: float = 5.0
    # Entries per XREAD of the reader, and per XRANGE page of a resume.
    read_count: int = 200
    # How long one XREAD waits for new entries (they wake it at once). Keep it well below the Redis
    # client's socket timeout (redis-py 8 defaults to 5 s), or an idle wait reads as a timeout.
    read_block_ms: int = 2_000
    # Event ids remembered to drop the relay's re-publications (it publishes at least once).
    dedupe_window: int = 4_096
    # Reader retries after a Redis failure: first wait, doubling up to the cap.
    retry_initial_seconds: float = 0.1
    retry_max_seconds: float = 5.0
    # How long a new stream waits for the reader's first contact with Redis before UNAVAILABLE.
    ready_timeout_seconds: float = 5.0
    # Followee sets are reloaded this often behind the follow events (0 = never).
    follow_refresh_seconds: float = 300.0
    # The hub logs its counters this often (0 = never).
    metrics_log_seconds: float = 60.0

    @model_validator(mode="after")
    def _consistent(self) -> RealtimeSettings:
        if self.max_queued_per_watcher < 4 * self.read_count:
            raise ValueError("max_queued_per_watcher must be at least 4 x read_count: a read is fanned out "
                             "at once, and a burst must not cut off streams that keep up")
        if self.heartbeat_seconds <= 0 or self.read_count < 1 or self.dedupe_window < 1:
            raise ValueError("heartbeat_seconds, read_count and dedupe_window must be positive")
        return self


class CacheSettings(BaseModel):
    """Cache lifetimes (`CONDUIT_CACHE__<NAME>`): the bound on staleness when an invalidation or an
    event is lost (docs/decisions/0013-cache-discipline.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The users directory in Redis (profiles, followee sets): versioned, invalidated after each write.
    directory_ttl_seconds: float = Field(default=300.0, gt=0)
    # Articles by slug, the front page of the public list and the tag list in Redis: versioned likewise.
    article_ttl_seconds: float = Field(default=60.0, gt=0)
    front_page_ttl_seconds: float = Field(default=15.0, gt=0)
    tags_ttl_seconds: float = Field(default=60.0, gt=0)
    # Public profiles cached in each process that shows authors (articles, realtime), evicted by events.
    profile_ttl_seconds: float = Field(default=60.0, gt=0)
    profile_entries: int = Field(default=20_000, ge=1)


class GraphqlSettings(BaseModel):
    """The graphql service (`CONDUIT_GRAPHQL__<NAME>`): its port and the limits on what one document may ask
    (docs/decisions/0031-graphql-over-the-mesh.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Where it listens (HTTP/1.1 and WebSocket; Envoy routes `/graphql` on the TLS port here).
    port: int = Field(default=8090, ge=1, le=65535)
    # Schema introspection and the GraphiQL page: off in production, on for local exploration.
    introspection: bool = False
    # Nesting depth, cost (fields x page sizes) and size in bytes of one document.
    max_depth: int = Field(default=10, ge=1)
    max_complexity: int = Field(default=5_000, ge=1)
    max_query_bytes: int = Field(default=16_384, ge=64)
    # Distinct documents whose parse and validation are kept (LRU); at most max_query_bytes each.
    documents_cached: int = Field(default=256, ge=1)
    # Answers to anonymous queries are shared this long (0: never); like REST's public pages, an anonymous
    # reader may see data this old (docs/decisions/0047-graphql-response-cache.md).
    response_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # Answers kept at most (least recently used dropped first; each at most 1 MiB).
    response_cache_entries: int = Field(default=1_024, ge=1)
    # Subscriptions one WebSocket connection may hold at once.
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    # Identical subscriptions (same document, variables and credentials, not resuming) share one realtime
    # stream and one execution per event (decision 0050); off: one stream each.
    subscriptions_shared: bool = True
    # Shared subscriptions one client (a user, else an address) may hold at once, as the realtime service
    # caps its streams (realtime max_watchers_per_client): one stream upstream no longer counts them.
    max_shared_subscriptions_per_client: int = Field(default=100, ge=1)
    # Results queued for one slow subscriber of a shared feed before it is ended (RESOURCE_EXHAUSTED;
    # it resumes with `after`).
    shared_subscription_backlog: int = Field(default=1_000, ge=1)
    # GraphiQL's built files (graphiql, react, react-dom from npm: `make graphql-clients`); empty = that cache.
    assets_dir: str = ""


class OidcSettings(BaseModel):
    """Sign-in through an external OpenID Connect provider (`CONDUIT_OIDC__<NAME>`), off while
    `issuer` or `client_id` is empty (docs/decisions/0044-oidc-login.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The provider's issuer URL; its discovery document is `<issuer>/.well-known/openid-configuration`.
    issuer: str = ""
    # The mesh's client registration at the provider.
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    # Where the provider sends the browser back: the gateway's `/api/auth/oidc/callback`, as registered.
    redirect_uri: str = ""
    # Scopes asked for: `openid` and `email` are needed to find or link an account.
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    # How long a started sign-in may take to come back (state, nonce and PKCE verifier kept in Redis).
    state_ttl_seconds: int = Field(default=600, ge=30, le=3600)
    # Timeout of each call to the provider (discovery, JWKS, token endpoint).
    http_timeout_seconds: float = Field(default=5.0, gt=0)
    # Discovery and JWKS are cached this long; an unknown key id refetches the JWKS (at most every 30 s).
    metadata_ttl_seconds: float = Field(default=3600.0, gt=0)

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id)


class Settings(BaseSettings):
    """Every knob of the mesh, read from `CONDUIT_*` environment variables.

    The defaults are for a developer's machine: loopback addresses, embedded
    PostgreSQL and Redis under `state_dir`.
    """

    model_config = SettingsConfigDict(env_prefix="CONDUIT_", env_nested_delimiter="__",
                                      extra="ignore", frozen=True)

    # Where embedded databases, keys and TLS material live between runs.
    state_dir: Path = Path(".state")
    # PostgreSQL; empty = start the embedded server under state_dir.
    database_url: str = ""
    # Redis; empty = start the embedded server under state_dir.
    redis_url: str = ""
    # Kept connections: at least the gateway's concurrency per service, so load does not churn overflow
    # connections (each new one re-prepares its statements: ~2.4 ms of CPU measured).
    database_pool_size: int = Field(default=20, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)

    # Address a service binds (0.0.0.0 in a container); with the ports below, also where the
    # others reach it unless a target is set.
    host: str = "127.0.0.1"
    users_port: int = 50051
    articles_port: int = 50052
    search_port: int = 50053
    realtime_port: int = 50054
    webhooks_port: int = 50055
    # Where Envoy and the other services reach a service, when not at host:port: `name:port`, a
    # DNS name resolving to every replica (a headless Service), or a comma-separated list of
    # `host:port` (Envoy and the gRPC clients balance over every address either way).
    users_target: str = ""
    articles_target: str = ""
    search_target: str = ""
    realtime_target: str = ""
    webhooks_target: str = ""
    # Where a deployed Envoy (the `gateway` command, the image's config) reaches the graphql service: `name:port`,
    # a DNS name or a comma-separated list of `host:port`, as above; it routes `/graphql` there (empty: no
    # /graphql). `conduit run` routes /graphql to the graphql process it starts (host, CONDUIT_GRAPHQL__PORT).
    graphql_target: str = ""
    # `conduit run` starts this many processes of each service (users, articles, search, realtime, webhooks):
    # the first on the port above, the others on free loopback ports; every one is in Envoy's
    # cluster and in the other services' address lists (unless a `*_target` is set).
    replicas: int = Field(default=1, ge=1, le=8)

    # Envoy: interface and TLS listener (REST and gRPC).
    gateway_host: str = "127.0.0.1"
    gateway_tls_port: int = 8443
    # Plain-HTTP listener for local use only; 0 disables it.
    gateway_http_port: int = 8080
    # Envoy's admin listener, loopback only.
    gateway_admin_port: int = 9901
    # Loopback-only listener from which Envoy's jwt_authn fetches the users JWKS.
    gateway_jwks_port: int = 9902
    # Seconds between Envoy's gRPC health checks of each upstream host (a NOT_SERVING answer takes
    # the host out at once; a hung host after two timed-out checks). `shutdown_drain_seconds` should
    # be at least this, so a draining process gets no new call once it stops accepting.
    gateway_health_check_interval_seconds: float = Field(default=1.0, gt=0)
    # The gateway's TLS certificate chain and key (PEM files, e.g. a mounted Secret); empty = a
    # local CA and localhost certificate generated under state_dir/tls.
    gateway_tls_cert: str = ""
    gateway_tls_key: str = ""
    # Cache-Control max-age of public answers (tags, articles, comments, profiles) to anonymous callers.
    gateway_public_max_age_seconds: int = Field(default=30, ge=0, le=86400)
    # Browser origins allowed to call the API (CORS): the dev and preview servers of the common
    # RealWorld frontends (React/Next 3000, Angular 4100/4200, Vite 5173 and preview 4173, Vue 8080).
    cors_origins: list[str] = Field(default_factory=lambda: [
        f"http://{host}:{port}" for host in ("localhost", "127.0.0.1")
        for port in (3000, 4100, 4173, 4200, 5173, 8080)])

    # Claims of the access tokens the users service signs and every service verifies.
    jwt_issuer: str = "conduit-mesh"
    jwt_audience: str = "conduit"
    # SDK and OAuth2 access tokens: short, renewed with a refresh token.
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    # Tokens of RealWorld's register and login (and of the user responses a browser stores): a
    # browser session, since RealWorld frontends never refresh; revocable (docs/decisions/0012).
    browser_session_ttl_seconds: int = Field(default=7 * 86400, ge=60, le=90 * 86400)
    # Refresh tokens of SDK and OAuth2 sessions (opaque, rotated on every use).
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, ge=60)
    # Key-encryption key for signing keys at rest; generated into state_dir when empty.
    key_encryption_key: SecretStr = SecretStr("")
    # Shared secret proving a caller is a service of the mesh (ACCESS_INTERNAL).
    internal_token: SecretStr = SecretStr("")

    # Registration attempts per client IP per hour, and login attempts per client IP per
    # 15 minutes (failed logins per account and IP stay at 10 per 15 minutes).
    registrations_per_ip_per_hour: int = Field(default=20, ge=1)
    logins_per_ip_per_quarter_hour: int = Field(default=100, ge=1)
    # Writes (creates, updates, deletes, comments, favorites, follows) per signed-in user per minute,
    # per service; the next is answered 429 with Retry-After (decision 0029).
    writes_per_user_per_minute: int = Field(default=600, ge=1)

    # Seconds in-flight calls get to finish on shutdown.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # Seconds between health turning NOT_SERVING and refusing new calls, so Envoy's
    # health checks move traffic away first: one health-check interval plus a check's 1 s timeout.
    shutdown_drain_seconds: float = Field(default=2.0, ge=0)
    # Published outbox rows and event-stream entries older than this are deleted by the relay (checked
    # every `outbox_prune_every_seconds`); the stream is also capped at `events_stream_max_len` entries.
    # Realtime resumes and search catch-up reach back at most this far.
    outbox_retention_seconds: float = Field(default=86_400.0, gt=0)
    outbox_prune_every_seconds: float = Field(default=60.0, gt=0)
    events_stream_max_len: int = Field(default=100_000, ge=1_000)
    # `conduit run` restarts a crashed child after a delay that doubles with each quick exit (one
    # within `restart_quick_exit_seconds` of its start) up to the maximum, and reports a crash loop
    # after `restart_crash_loop_exits` quick exits in a row (it keeps trying at the maximum delay).
    restart_first_delay_seconds: float = Field(default=0.2, ge=0)
    restart_max_delay_seconds: float = Field(default=30.0, ge=0)
    restart_quick_exit_seconds: float = Field(default=10.0, ge=0)
    restart_crash_loop_exits: int = Field(default=5, ge=1)
    # How long the first result of a call with an `idempotency-key` is kept and returned for its
    # repeats, and how long a running first attempt holds its key (docs/decisions/0034).
    idempotency_window_seconds: float = Field(default=86_400.0, gt=0)
    idempotency_pending_seconds: float = Field(default=60.0, gt=0)
    # Default deadline for calls between services when the caller sent none.
    internal_call_timeout_seconds: float = Field(default=5.0, gt=0)
    # JSON logs on stderr, from this level up.
    log_level: str = "INFO"
    # How often a users process reloads signing keys (a rotation by another replica shows up within it).
    signing_key_reload_seconds: float = Field(default=30.0, gt=0)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    graphql: GraphqlSettings = Field(default_factory=GraphqlSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    webhooks: WebhooksSettings = Field(default_factory=WebhooksSettings)

    # Search: Elasticsearch when set (e.g. http://127.0.0.1:9201), else PostgreSQL full-text search.
    elasticsearch_url: str = ""
    # The Elasticsearch alias searched (its indices are `<alias>-*`).
    search_index: str = "conduit-articles"
    # Events another indexer read and left unacknowledged this long are taken over (it died).
    search_claim_idle_seconds: float = Field(default=30.0, gt=0)
    # The same search asked again within this many seconds is answered from memory (hits, snippets,
    # total, facets; who sees what is asked per signed-in caller, and shared as long among anonymous
    # ones); 0 turns it off. Writes through this replica's index forget everything at once; another
    # replica's reach it within this time (decision 0048).
    search_answers_shared_seconds: float = Field(default=1.0, ge=0, le=60)
    # How many distinct searches are kept at most (least recently used dropped first).
    search_answers_shared_entries: int = Field(default=1_024, ge=1)
    # An anonymous caller's view of a found article (the list shape: counts, author) is kept until an
    # article or profile event evicts it, this many seconds at most: the bound when an eviction is
    # missed or overtakes the articles service's own (decision 0048); what a browser may keep an
    # anonymous search page (decision 0043). Off when search_answers_shared_seconds is 0.
    search_views_kept_seconds: float = Field(default=30.0, gt=0, le=3600)
    # How many articles' anonymous views are kept at most (least recently used dropped first).
    search_views_kept_entries: int = Field(default=10_000, ge=1)
    # How many searches one search process runs on PostgreSQL at once; the others wait in arrival
    # order. 0: the CPUs this process sees, right when PostgreSQL runs beside it (embedded); with a
    # PostgreSQL of its own, about its cores divided by the search replicas (decision 0053).
    search_database_concurrency: int = Field(default=0, ge=0, le=1_000)

    # Observability (decisions 0018, 0019). Prometheus `/metrics` per process, on its own port.
    metrics_enabled: bool = False
    users_metrics_port: int = 9464
    articles_metrics_port: int = 9465
    search_metrics_port: int = 9466
    realtime_metrics_port: int = 9467
    webhooks_metrics_port: int = 9468
    # Traces (OpenTelemetry; exporter and sampler from the standard OTEL_* variables), off unless asked.
    tracing: bool = False
    # Where Envoy sends its spans (OTLP/gRPC); the services' exporters read the same variable.
    otlp_endpoint: str = Field(default="http://127.0.0.1:4317", validation_alias=AliasChoices(
        "otlp_endpoint", "CONDUIT_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"))
    # Share of requests Envoy starts a sampled trace for; the services follow its decision.
    trace_sample_percent: float = Field(default=100.0, ge=0, le=100)

    def as_environment(self) -> dict[str, str]:
        """Every setting as the `CONDUIT_*` variable that would recreate it (for child processes)."""
        environment: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, list | dict):
                # A group may hold secrets too (CONDUIT_OIDC__CLIENT_SECRET).
                text = json.dumps(value, default=lambda item: item.get_secret_value()
                                  if isinstance(item, SecretStr) else str(item))
            else:
                text = str(value)
            environment[f"CONDUIT_{name.upper()}"] = text
        return environment

    def port_of(self, service: ServiceName) -> int:
        ports: dict[ServiceName, int] = {"users": self.users_port, "articles": self.articles_port,
                                         "search": self.search_port, "realtime": self.realtime_port,
                                         "webhooks": self.webhooks_port}
        return ports[service]

    def target_of(self, service: ServiceName) -> str:
        """Where a service is reached: its `*_target`, else host:port."""
        targets: dict[ServiceName, str] = {"users": self.users_target, "articles": self.articles_target,
                                           "search": self.search_target, "realtime": self.realtime_target,
                                           "webhooks": self.webhooks_target}
        return targets[service] or self.address_of(service)

    def endpoints_of(self, service: ServiceName) -> list[tuple[str, int]]:
        """`target_of(service)` as `(host, port)` pairs (a name stays a name: resolved by the caller)."""
        return [split_address(part) for part in self.target_of(service).split(",") if part.strip()]
    def metrics_port_of(self, service: ServiceName) -> int:
        ports: dict[ServiceName, int] = {"users": self.users_metrics_port, "articles": self.articles_metrics_port,
                                         "search": self.search_metrics_port,
                                         "realtime": self.realtime_metrics_port,
                                         "webhooks": self.webhooks_metrics_port}
        return ports[service]

    def address_of(self, service: ServiceName) -> str:
        """The local address a service binds (`host:port`)."""
        return f"{self.host}:{self.port_of(service)}"

    def users_address(self) -> str:
        """A gRPC target for the users service, balanced over every address when there are several."""
        return self.grpc_target("users")

    def grpc_target(self, service: ServiceName) -> str:
        """A gRPC target for `service`, balanced (round robin) over every address when there are several."""
        endpoints = self.endpoints_of(service)
        if len(endpoints) == 1:
            host, port = endpoints[0]
            return f"{host}:{port}"
        return "ipv4:" + ",".join(f"{host}:{port}" for host, port in endpoints)


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) as a pair; ValueError when the port is missing or not a number."""
    host, separator, port = address.strip().rpartition(":")
    if not separator or not host or not port.isdigit():
        raise ValueError(f"not a host:port address: {address!r}")
    return host.strip("[]"), int(port)
