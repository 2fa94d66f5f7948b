// The typed client of the edge's HTTP API: paths, methods, parameters and
// request bodies are checked by `tsc` against the OpenAPI document
// (`openapi.d.ts` is generated from shared/src/openapi.json by
// `cargo xtask build-worker`). What a frontend imports to call the edge.
import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './generated/openapi';

export type { paths };

/// The edge's error body: `{"error": {"code", "message"}}`.
export interface ApiErrorBody {
  error?: { code?: string; message?: string };
}

/// A refused or failed call, with the API's own words for it.
export class ApiFailure extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly code: string | null,
  ) {
    super(message);
  }
}

/// A client for the edge at `baseUrl` that sends the bearer token
/// `token()` gives (none when it gives null).
export function edgeClient(baseUrl: string, token: () => Promise<string | null>) {
  const client = createClient<paths>({ baseUrl });
  const auth: Middleware = {
    async onRequest({ request }) {
      const bearer = await token();
      if (bearer) request.headers.set('authorization', `Bearer ${bearer}`);
      return request;
    },
  };
  client.use(auth);
  return client;
}

export type EdgeClient = ReturnType<typeof edgeClient>;

/// The answer of a call, typed by the OpenAPI document's schema for it, or
/// an `ApiFailure` carrying the API's `message`.
export async function answer<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result;
  try {
    result = await call;
  } catch (e) {
    throw new ApiFailure(`The API could not be reached (${String(e)}).`, null, null);
  }
  if (result.response.ok) return result.data as T;
  throw failure(result.response.status, result.error);
}

export function failure(status: number, body: unknown): ApiFailure {
  const error = (body as ApiErrorBody | undefined)?.error;
  const message = error?.message ?? `The API answered ${status}.`;
  return new ApiFailure(message, status, error?.code ?? null);
}

// The shapes the page reads: the answers' schemas in the OpenAPI document
// (derived from the edge's Rust types), as openapi-typescript writes them.
type Schemas = components['schemas'];

export type Balance = Schemas['Balance'];
export type UsageTotals = Schemas['UsageTotals'];
export type Overview = Schemas['Overview'];
export type ApiKey = Schemas['ApiKey'];
export type CreatedApiKey = Schemas['CreatedApiKey'];
export type Model = Schemas['Model'];
export type UsageEvent = Schemas['UsageEvent'];
export type UsageEventPage = Schemas['UsageEventsPage'];
