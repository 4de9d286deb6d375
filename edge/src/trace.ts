// W3C Trace Context for one request. The edge continues the caller's trace (a valid
// `traceparent`) or starts one, and is a span of its own in it: the workflow it starts or
// signals runs under that span. The worker reads the `_tracer-data` workflow header (the key
// Temporal's OpenTelemetry interceptors use in every SDK): `traceparent`, `tracestate`, and a W3C
// `baggage` with the request id and the caller, which every activity's log lines then carry.

export interface Trace {
  /** 32 lowercase hex digits. */
  traceId: string;
  /** The edge's own span: 16 lowercase hex digits. */
  spanId: string;
  /** The caller's span, when it sent a traceparent. */
  parentSpanId: string | null;
  /** Trace flags, 2 hex digits ("01": sampled). */
  flags: string;
  tracestate?: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function nonZero(hex: string): boolean {
  return !/^0+$/.test(hex);
}

/** The request's trace: the caller's continued when its traceparent is valid, else a new one. */
export function continueTrace(h: Headers): Trace {
  let spanId = randomHex(8);
  while (!nonZero(spanId)) spanId = randomHex(8);
  const m = TRACEPARENT.exec(h.get("traceparent")?.trim().toLowerCase() ?? "");
  if (m && m[1] !== "ff" && nonZero(m[2]) && nonZero(m[3])) {
    const ts = h.get("tracestate")?.trim();
    return { traceId: m[2], spanId, parentSpanId: m[3], flags: m[4], tracestate: ts && ts.length <= 512 ? ts : undefined };
  }
  let traceId = randomHex(16);
  while (!nonZero(traceId)) traceId = randomHex(16);
  return { traceId, spanId, parentSpanId: null, flags: "01" };
}

/** The edge's span as a traceparent (also answered as `traceresponse`). */
export function traceparent(t: Trace): string {
  return `00-${t.traceId}-${t.spanId}-${t.flags}`;
}

/** What the worker's activities log as `edge_request_id` and `edge_subject`. */
export interface EdgeBaggage {
  edge_request_id: string;
  edge_subject?: string;
}

/**
 * The `_tracer-data` workflow header: the edge's span as the parent, and the request's baggage.
 * The caller's own `baggage` header is not forwarded: what the worker logs as the edge's request
 * id and caller must come from the edge.
 */
export function traceHeader(t: Trace, baggage: EdgeBaggage): Record<string, unknown> {
  const data: Record<string, string> = { traceparent: traceparent(t) };
  if (t.tracestate) data.tracestate = t.tracestate;
  const entries = Object.entries(baggage).filter((e): e is [string, string] => typeof e[1] === "string");
  if (entries.length) data.baggage = entries.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join(",");
  return { "_tracer-data": data };
}
