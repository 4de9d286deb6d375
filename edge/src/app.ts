// Request lifecycle: request id, settings (or 500 `misconfigured` for every
// request when they are bad), routing, the single error-to-problem mapping and
// one access-log line per request. `handle` takes its collaborators as `Deps`
// so tests can swap the catalog; outbound calls use the global `fetch`.
import { codecFor } from "./codec";
import { loadSettings, type Settings } from "./config";
import { gatewayAuthorization, type BoundRequest } from "./gateway";
import { problem, toResponse } from "./problem";
import { ROUTES, type Ctx, type Route } from "./routes";
import { Catalog, type Manifest } from "./schemas";
import { TemporalClient, type FetchFn } from "./temporal";
import { continueTrace, traceparent } from "./trace";
import { manifest, schemaFiles } from "./generated/catalog";
import { ActivityRegistry, EDGE_ACTIVITIES } from "./activities";

export interface Deps {
  catalog: Catalog;
  fetch: FetchFn;
  /** The edge activities (tests add their own, e.g. one that counts its runs). */
  activities: ActivityRegistry;
}

let defaultCatalog: Catalog | undefined;
let defaultActivities: ActivityRegistry | undefined;

export function defaultDeps(): Deps {
  defaultCatalog ??= Catalog.fromManifest(manifest satisfies Manifest, schemaFiles);
  defaultActivities ??= new ActivityRegistry(EDGE_ACTIVITIES);
  // Looked up at call time and called unbound: workerd's fetch throws "Illegal invocation" as a method.
  return { catalog: defaultCatalog, activities: defaultActivities, fetch: (input, init) => fetch(input, init) };
}

// Logged once per isolate and distinct set of errors, not once per request.
const loggedConfigErrors = new Set<string>();

const compiled = ROUTES.map((r) => ({
  route: r,
  names: [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]),
  re: new RegExp(`^${r.path.replace(/\{\w+\}/g, "([^/]+)")}$`),
}));

function match(method: string, pathname: string): { route: Route; params: Record<string, string> } | { allow: string[] } | null {
  const allow: string[] = [];
  for (const c of compiled) {
    const m = c.re.exec(pathname);
    if (!m) continue;
    if (c.route.method !== method) {
      allow.push(c.route.method);
      continue;
    }
    const params: Record<string, string> = {};
    c.names.forEach((n, i) => {
      try {
        params[n] = decodeURIComponent(m[i + 1]);
      } catch {
        params[n] = "";
      }
    });
    return { route: c.route, params };
  }
  return allow.length ? { allow } : null;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * What authorizes a call to Temporal: the API key straight to the HTTP API, or,
 * through the gateway, a token minted per call for the caller known by then
 * (every route authenticates before calling Temporal).
 */
function temporalAuthorization(
  t: Settings["temporal"],
  subject: () => string | undefined,
  requestId: string,
): (req: BoundRequest) => Promise<string | undefined> {
  const gateway = t.gateway;
  if (gateway) return (req) => gatewayAuthorization(gateway, subject() ?? "edge", requestId, req);
  const bearer = t.apiKey ? `Bearer ${t.apiKey}` : undefined;
  return async () => bearer;
}

export async function handle(request: Request, env: Env, exec: ExecutionContext, deps: Deps = defaultDeps()): Promise<Response> {
  const started = Date.now();
  const url = new URL(request.url);
  const given = request.headers.get("X-Request-Id");
  const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID();
  const trace = continueTrace(request.headers);
  let response: Response;
  let ctx: Ctx | undefined;
  try {
    const loaded = loadSettings(env, deps.catalog);
    if (!loaded.ok) {
      const signature = loaded.errors.join("\n");
      if (!loggedConfigErrors.has(signature)) {
        loggedConfigErrors.add(signature);
        console.error(JSON.stringify({ level: "error", msg: "refusing to serve: bad configuration", errors: loaded.errors }));
      }
      throw problem("misconfigured");
    }
    const found = match(request.method, url.pathname);
    if (!found) throw problem("not-found");
    if ("allow" in found) throw problem("method-not-allowed", { headers: { Allow: found.allow.join(", ") } });
    const settings = loaded.settings;
    ctx = {
      request,
      env,
      exec,
      settings,
      catalog: deps.catalog,
      activities: deps.activities,
      fetch: deps.fetch,
      requestId,
      params: found.params,
      trace,
      temporal: new TemporalClient({
        ...settings.temporal,
        authorization: temporalAuthorization(settings.temporal, () => ctx?.caller?.principal, requestId),
        fetch: deps.fetch,
        codec: async () => (settings.encryption ? codecFor(settings.encryption) : undefined),
      }),
    };
    response = await found.route.handler(ctx);
  } catch (e) {
    response = toResponse(e, { requestId, instance: url.pathname });
  }
  // Headers a route owes every answer, its refusals too (the codec server's CORS headers).
  for (const [k, v] of Object.entries(ctx?.responseHeaders ?? {})) response.headers.set(k, v);
  response.headers.set("X-Request-Id", requestId);
  // W3C Trace Context level 2: which trace this request is in, and the edge's span in it.
  response.headers.set("traceresponse", traceparent(trace));
  response.headers.set("Cache-Control", "no-store");
  console.log(
    JSON.stringify({
      level: "info",
      msg: "request",
      request_id: requestId,
      method: request.method,
      path: url.pathname,
      status: response.status,
      ms: Date.now() - started,
      subject: ctx?.caller?.subject ?? null,
      workflow_id: ctx?.workflowId ?? null,
      trace_id: trace.traceId,
      span_id: trace.spanId,
    }),
  );
  return response;
}
