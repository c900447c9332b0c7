// A page built with the client: lists articles through gRPC-Web over TLS, then adds new ones as
// a watch reports them. Query parameters: `api` (the gateway, default https://localhost:8443),
// `tag` (filter), `missing` (a slug to look up, to show how an error arrives: code name and
// ErrorInfo reason).
import { ConduitError, connect, EventType } from "../src/web.js";

const params = new URLSearchParams(location.search);
const conduit = connect({ baseUrl: params.get("api") ?? "https://localhost:8443" });

function element(id: string): HTMLElement {
  const found = document.getElementById(id);
  if (found === null) {
    throw new Error(`#${id} is missing`);
  }
  return found;
}

async function probe(slug: string): Promise<string> {
  try {
    await conduit.articles.getArticle({ slug });
    return "found";
  } catch (error) {
    return error instanceof ConduitError ? `${error.codeName} ${error.reason ?? "(no reason)"}` : String(error);
  }
}

/** New articles, as they are published: the body's `data-live` is set once the stream is open. */
async function watch(tag: string): Promise<void> {
  for await (const event of conduit.watchArticles({ tag }, { includeHeartbeats: true })) {
    document.body.dataset["live"] = "yes";
    if (event.type === EventType.ARTICLE_CREATED && event.resource.case === "article") {
      const item = document.createElement("li");
      item.dataset["slug"] = event.resource.value.slug;
      item.textContent = `${event.resource.value.title} (new)`;
      element("articles").prepend(item);
    }
  }
}

async function main(): Promise<void> {
  const page = await conduit.articles.listArticles({ limit: 20, tag: params.get("tag") ?? "" });
  const list = element("articles");
  for (const article of page.articles) {
    const item = document.createElement("li");
    item.dataset["slug"] = article.slug;
    item.textContent = `${article.title} — ${article.author?.username ?? "?"}`;
    list.append(item);
  }
  element("status").textContent = `${page.articlesCount} articles`;
  void watch(params.get("tag") ?? "");
  const missing = params.get("missing");
  if (missing) {
    element("probe").textContent = await probe(missing);
  }
}

main().then(
  () => { document.body.dataset["state"] = "ready"; },
  (error: unknown) => {
    element("status").textContent = String(error);
    document.body.dataset["state"] = "error";
  },
);
