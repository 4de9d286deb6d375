// The TypeScript SDK peer's activities: `echo` returns its input's message; `http.call` GETs a
// named service through Node's fetch (keep-alive), with an Idempotency-Key like edgeflow's, and
// gives up on a request after `timeoutMs` (BENCH_HTTP_TIMEOUT_SECS; 30 s by default).
import { Context } from '@temporalio/activity';

export function makeActivities(services, timeoutMs = 30_000) {
  return {
    async echo(input) {
      if (input.delay_ms) await new Promise((r) => setTimeout(r, input.delay_ms));
      return input.message;
    },
    async 'http.call'(input) {
      const { workflowExecution } = Context.current().info;
      const url = new URL(services[input.service] + input.path);
      for (const [k, v] of Object.entries(input.query ?? {})) url.searchParams.set(k, v);
      const res = await fetch(url, {
        method: input.method ?? 'GET',
        headers: { 'Idempotency-Key': `${workflowExecution.workflowId}/${input.step}` },
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = await res.arrayBuffer();
      if (res.status >= 400) throw new Error(`${url} answered ${res.status}`);
      const contentType = res.headers.get('content-type') ?? '';
      const isJson = contentType.includes('json');
      const text = new TextDecoder().decode(body);
      return {
        status: res.status,
        headers: contentType ? { 'content-type': contentType } : {},
        json: isJson ? JSON.parse(text) : null,
        text: isJson || body.byteLength === 0 ? null : text,
      };
    },
  };
}
