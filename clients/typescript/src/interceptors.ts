// Every failure of a call or of a stream's messages becomes a ConduitError naming the RPC.
import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import type { DescMessage } from "@bufbuild/protobuf";
import { toConduitError } from "./errors.js";

async function* rethrowing<T>(messages: AsyncIterable<T>, procedure: string): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    throw toConduitError(error, procedure);
  }
}

export const errorInterceptor: Interceptor = (next) => async (request) => {
  const procedure = `${request.service.typeName}/${request.method.name}`;
  try {
    const response = await next(request);
    if (!response.stream) {
      return response;
    }
    const stream = response as StreamResponse<DescMessage, DescMessage>;
    return { ...stream, message: rethrowing(stream.message, procedure) };
  } catch (error) {
    throw toConduitError(error, procedure);
  }
};
