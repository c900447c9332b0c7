// What the live tests share: the mesh's address (from the pytest driver), a user factory and
// a TCP relay that can cut or freeze the connections it carries.
import { randomBytes } from "node:crypto";
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
import { connect, type Conduit, type NodeClientOptions } from "../src/node.js";
import type { TokenProvider } from "../src/auth.js";

export function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: the live tests run from tests/typescript (make test)`);
  }
  return value;
}

/** The gateway's TLS URL, e.g. https://localhost:8443 (its CA comes from NODE_EXTRA_CA_CERTS). */
export const baseUrl = (): string => env("CONDUIT_URL");

export function client(token?: string | TokenProvider, extra: Partial<NodeClientOptions> = {}): Conduit {
  return connect({ baseUrl: baseUrl(), ...(token === undefined ? {} : { token }), ...extra });
}

export function unique(prefix: string): string {
  return `${prefix}${randomBytes(5).toString("hex")}`;
}

export interface Account {
  username: string;
  token: string;
}

export async function register(conduit: Conduit = client()): Promise<Account> {
  const username = unique("ts");
  const { user } = await conduit.users.createUser({
    user: { username, email: `${username}@example.com`, password: "correct horse battery" },
  });
  if (!user?.token) {
    throw new Error("CreateUser returned no token");
  }
  return { username, token: user.token };
}

export async function publish(conduit: Conduit, title: string, tags: string[] = []): Promise<string> {
  const { article } = await conduit.articles.createArticle({
    article: { title, description: "from the TypeScript client", body: "# hello", tagList: tags },
  });
  if (!article?.slug) {
    throw new Error("CreateArticle returned no slug");
  }
  return article.slug;
}

/**
 * A TCP relay in front of the gateway (TLS passes through untouched). `cut()` destroys every
 * carried connection; `freeze()` stops forwarding on them without closing (a half-open peer);
 * `block()` refuses new connections until `unblock()`.
 */
export class Relay {
  private readonly server: Server;
  private readonly carried = new Set<Socket>();
  private frozen = new Set<Socket>();
  private blocked = false;
  connections = 0;

  private constructor(private readonly target: URL) {
    this.server = createServer((downstream) => this.carry(downstream));
  }

  static async start(target: string): Promise<Relay> {
    const relay = new Relay(new URL(target));
    await new Promise<void>((resolve) => relay.server.listen(0, "127.0.0.1", resolve));
    return relay;
  }

  /** The relay's URL: same host name as the target (the certificate's), the relay's port. */
  get url(): string {
    const address = this.server.address();
    if (address === null || typeof address === "string") {
      throw new Error("relay is not listening");
    }
    return `${this.target.protocol}//${this.target.hostname}:${address.port}`;
  }

  private carry(downstream: Socket): void {
    if (this.blocked) {
      downstream.destroy();
      return;
    }
    this.connections += 1;
    const upstream = tcpConnect(Number(this.target.port), "127.0.0.1");
    for (const [from, to] of [[downstream, upstream], [upstream, downstream]] as const) {
      this.carried.add(from);
      from.on("data", (chunk: Buffer) => {
        if (!this.frozen.has(from)) {
          to.write(chunk);
        }
      });
      from.on("close", () => {
        this.carried.delete(from);
        to.destroy();
      });
      from.on("error", () => to.destroy());
    }
  }

  cut(): void {
    for (const socket of this.carried) {
      socket.destroy();
    }
  }

  freeze(): void {
    this.frozen = new Set(this.carried);
  }

  block(): void {
    this.blocked = true;
  }

  unblock(): void {
    this.blocked = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
