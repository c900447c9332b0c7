// The auth interceptor: a bearer token from a provider function, read on every call (and so
// on every reconnect of a watch), so that a provider that refreshes its token is honoured.
import type { Interceptor } from "@connectrpc/connect";

/** Returns the current access token, or undefined/empty for an anonymous call. */
export type TokenProvider = () => string | undefined | Promise<string | undefined>;

/** `Authorization: Bearer <token>` on every request whose provider returns a token. */
export function authInterceptor(token: TokenProvider): Interceptor {
  return (next) => async (request) => {
    const value = await token();
    if (value) {
      request.header.set("authorization", `Bearer ${value}`);
    }
    return await next(request);
  };
}
