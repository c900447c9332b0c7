// The example page (browser/, bundled into dist/page) in headless Debian Chromium driven by
// playwright-core: it lists articles through gRPC-Web over TLS. Chromium trusts the mesh's local
// CA through an NSS database in a throw-away HOME (certutil), never by ignoring certificate errors.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { after, before, test } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { client, env, publish, register, unique } from "./support.js";

const PAGE_ROOT = new URL("../page/", import.meta.url).pathname;
const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };
// Chromium as the machine's probe runs it: no network but loopback here.
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let server: Server;
let origin: string;
const homes: string[] = [];

/** A HOME whose NSS database trusts `caFile` as a root for TLS servers (or trusts nothing). */
function browserHome(caFile?: string): string {
  const home = mkdtempSync(join(tmpdir(), "conduit-chromium-"));
  homes.push(home);
  const db = `sql:${join(home, ".pki", "nssdb")}`;
  execFileSync("mkdir", ["-p", join(home, ".pki", "nssdb")]);
  execFileSync("certutil", ["-d", db, "-N", "--empty-password"]);
  if (caFile !== undefined) {
    execFileSync("certutil", ["-d", db, "-A", "-t", "C,,", "-n", "conduit-local-ca", "-i", caFile]);
  }
  return home;
}

async function launch(home: string): Promise<Browser> {
  return await chromium.launch({
    executablePath: process.env["CHROMIUM"] ?? "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: home },
  });
}

before(async () => {
  // Served from the origin the mesh's CORS policy allows (CONDUIT_CORS_ORIGINS, set by pytest).
  const port = Number(env("CONDUIT_PAGE_PORT"));
  server = createServer((request, response) => {
    const path = normalize(new URL(request.url ?? "/", "http://page").pathname).replace(/^\/+/, "") || "index.html";
    try {
      const body = readFileSync(join(PAGE_ROOT, path));
      response.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${port}`;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  for (const home of homes) {
    rmSync(home, { recursive: true, force: true });
  }
});

test("the page lists articles through gRPC-Web over TLS, shows an error's code and reason, and watches new ones", async () => {
  const account = await register();
  const tag = unique("web");
  const slug = await publish(client(account.token), unique("In the browser "), [tag]);
  const browser = await launch(browserHome(env("CONDUIT_CA")));
  try {
    const page = await browser.newPage();
    const grpcWeb: string[] = [];
    page.on("request", (request) => {
      if (request.method() === "POST" && request.headers()["content-type"] === "application/grpc-web+proto") {
        grpcWeb.push(new URL(request.url()).pathname);
      }
    });
    const api = encodeURIComponent(env("CONDUIT_URL"));
    await page.goto(`${origin}/?api=${api}&tag=${tag}&missing=${unique("no-such-")}`);
    await page.waitForSelector("body[data-state]");
    const state = await page.getAttribute("body", "data-state");
    assert.equal(state, "ready", await page.textContent("#status") ?? "");
    assert.deepEqual(await page.$$eval("#articles li", (items) => items.map((li) => li.getAttribute("data-slug"))),
      [slug]);
    assert.equal(await page.textContent("#status"), "1 articles");
    // NOT_FOUND with its ErrorInfo reason: grpc-status-details-bin is readable cross-origin.
    assert.match(await page.textContent("#probe") ?? "", /^NOT_FOUND [A-Z_]+$/);
    // A server stream in the browser: an article published now appears through the page's watch.
    await page.waitForSelector("body[data-live]");
    const later = await publish(client(account.token), unique("Live in the browser "), [tag]);
    await page.waitForSelector(`#articles li[data-slug="${later}"]`);
    assert.deepEqual(grpcWeb.sort(), ["/conduit.articles.v1.ArticlesService/GetArticle",
      "/conduit.articles.v1.ArticlesService/ListArticles", "/conduit.realtime.v1.RealtimeService/WatchArticles"]);
  } finally {
    await browser.close();
  }
});

test("without the local CA in its trust store the browser refuses the gateway", async () => {
  const browser = await launch(browserHome());
  try {
    const page = await browser.newPage();
    await page.goto(`${origin}/?api=${encodeURIComponent(env("CONDUIT_URL"))}`);
    await page.waitForSelector("body[data-state]");
    assert.equal(await page.getAttribute("body", "data-state"), "error");
    assert.match(await page.textContent("#status") ?? "", /unavailable|Failed to fetch/i);
  } finally {
    await browser.close();
  }
});
