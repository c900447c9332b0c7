// A real OpenID Provider for the OIDC login tests: panva's certified `oidc-provider`, on a
// loopback port, with static client registrations and accounts the test logs in.
//
//   node provider.mjs   (environment below; prints "listening <issuer>" when ready)
//
// OIDC_MODULES   the node_modules directory holding oidc-provider (the project's npm cache)
// OIDC_PORT      the loopback port; the issuer is http://127.0.0.1:<port>
// OIDC_CLIENTS   JSON list of {client_id, client_secret, redirect_uris}
//
// Interactions: the provider sends the browser to /interaction/<uid>. A POST there (form:
// account, email, email_verified, preferred_username) logs that account in; a POST at the consent
// prompt grants what was asked. Everything else — codes, PKCE, tokens, ID tokens, JWKS — is the
// provider's own. One test hook: POST /test/next-id-token (JSON claims) makes the next token
// response carry an ID token with those claims changed, signed with the provider's real key
// (an ID token for another audience, say, which no honest flow produces).
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.OIDC_MODULES;
const port = Number(process.env.OIDC_PORT);
const clients = JSON.parse(process.env.OIDC_CLIENTS || "[]");
const load = (name, file) => import(pathToFileURL(path.join(modules, name, file)).href);
const { default: Provider } = await load("oidc-provider", "lib/index.js");
const jose = await load("jose", "dist/webapi/index.js");

const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: "test-key-1", alg: "RS256", use: "sig" };
const accounts = new Map();
let nextIdTokenClaims = null;

const provider = new Provider(issuer, {
  clients: clients.map((client) => ({
    ...client,
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  })),
  jwks: { keys: [signingJwk] },
  cookies: { keys: ["conduit-test-cookie-key"] },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["preferred_username", "name"] },
  // Claims of the granted scopes in the ID token too (as most providers do), not only at userinfo.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const claims = accounts.get(id);
    if (claims === undefined) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
});

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === "/token" && nextIdTokenClaims !== null && ctx.body && ctx.body.id_token) {
    const payload = jose.decodeJwt(ctx.body.id_token);
    ctx.body = {
      ...ctx.body,
      id_token: await new jose.SignJWT({ ...payload, ...nextIdTokenClaims })
        .setProtectedHeader({ alg: "RS256", kid: signingJwk.kid }).sign(privateKey),
    };
    nextIdTokenClaims = null;
  }
});

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const form = new URLSearchParams(await readBody(req));
  if (details.prompt.name === "login") {
    const account = form.get("account");
    accounts.set(account, {
      email: form.get("email"),
      email_verified: form.get("email_verified") === "true",
      preferred_username: form.get("preferred_username") || undefined,
    });
    await provider.interactionFinished(req, res, { login: { accountId: account } },
      { mergeWithLastSubmission: false });
    return;
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
    { mergeWithLastSubmission: true });
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === "POST" && req.url.startsWith("/interaction/")) {
      await interaction(req, res);
    } else if (req.method === "POST" && req.url === "/test/next-id-token") {
      nextIdTokenClaims = JSON.parse(await readBody(req));
      res.writeHead(204).end();
    } else {
      provider.callback()(req, res);
    }
  } catch (error) {
    res.writeHead(400, { "content-type": "text/plain" }).end(String(error));
  }
});
server.listen(port, "127.0.0.1", () => console.log(`listening ${issuer}`));
