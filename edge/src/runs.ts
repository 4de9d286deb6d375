// What the edge knows about a run and how a caller waits for one. The KV hint
// (`run:<id>`, written by the completion webhook) answers for finished runs;
// Temporal's describe is the truth when the hint is missing or the run is
// open. Waiting parks on the run's Durable Object, which the webhook wakes;
// Temporal's close event is read only as a fallback when no webhook came (or
// long-polled when no webhook secret is configured at all).
import type { Settings } from "./config";
import { runPath } from "./problem";
import { TERMINAL, type Execution, type Outcome, type RunStatus, type TemporalClient } from "./temporal";

/** The run resource as `GET /v1/runs/{id}` and waited starts return it. */
export interface RunView {
  workflow_id: string;
  run_id: string | null;
  workflow_type: string;
  status: RunStatus;
  result: unknown;
  error: { message: string } | null;
  links: { self: string };
}

/** Written by the webhook under `run:<workflow id>`. */
export interface RunHint {
  workflow_id: string;
  run_id: string;
  workflow_type: string;
  status: RunStatus;
  result: unknown;
  error: { message: string } | null;
  updated_at: string;
}

/** Written at start under `meta:<workflow id>`: lets a finished run be read from KV alone. */
export interface RunMeta {
  owner: string;
  workflow_type: string;
  run_id: string;
}

const HINT_TTL_SECONDS = 7 * 24 * 3600;

export const hintKey = (workflowId: string) => `run:${workflowId}`;
export const metaKey = (workflowId: string) => `meta:${workflowId}`;

export async function readHint(kv: KVNamespace, workflowId: string): Promise<RunHint | null> {
  return kv.get<RunHint>(hintKey(workflowId), "json");
}

export async function readMeta(kv: KVNamespace, workflowId: string): Promise<RunMeta | null> {
  return kv.get<RunMeta>(metaKey(workflowId), "json");
}

export async function writeHint(kv: KVNamespace, hint: RunHint): Promise<void> {
  await kv.put(hintKey(hint.workflow_id), JSON.stringify(hint), { expirationTtl: HINT_TTL_SECONDS });
}

export async function writeMeta(kv: KVNamespace, workflowId: string, meta: RunMeta): Promise<void> {
  await kv.put(metaKey(workflowId), JSON.stringify(meta), { expirationTtl: HINT_TTL_SECONDS });
}

export function isTerminal(status: RunStatus): boolean {
  return TERMINAL.has(status);
}

export function runningView(workflowId: string, runId: string | null, workflowType: string, status: RunStatus = "running"): RunView {
  return { workflow_id: workflowId, run_id: runId, workflow_type: workflowType, status, result: null, error: null, links: { self: runPath(workflowId) } };
}

export function outcomeView(workflowId: string, runId: string | null, workflowType: string, o: Outcome): RunView {
  return {
    workflow_id: workflowId,
    run_id: o.runId ?? runId,
    workflow_type: workflowType,
    status: o.status,
    result: o.result ?? null,
    error: o.error ?? null,
    links: { self: runPath(workflowId) },
  };
}

export function hintView(h: RunHint): RunView {
  return outcomeView(h.workflow_id, h.run_id, h.workflow_type, { status: h.status, runId: h.run_id, result: h.result, error: h.error });
}

/** The view of a described run: running as described, or finished with its outcome (from the hint, else its close event). */
export async function viewOf(temporal: TemporalClient, exec: Execution, hint: RunHint | null): Promise<RunView> {
  if (!isTerminal(exec.status)) return runningView(exec.workflowId, exec.runId, exec.workflowType, exec.status);
  if (hint && isTerminal(hint.status) && hint.run_id === exec.runId) return hintView(hint);
  const { outcome } = await temporal.closeEvent(exec.workflowId, { wait: false });
  return outcomeView(exec.workflowId, exec.runId, exec.workflowType, outcome ?? { status: exec.status, result: null, error: null });
}

/**
 * Waits up to `seconds` for the run to finish. With webhooks configured the
 * caller parks on the run's Durable Object; if nothing was delivered by the
 * deadline, one describe (and close-event read) catches a lost webhook. Without webhooks the
 * close event is long-polled.
 */
export async function waitForOutcome(
  env: Env,
  settings: Settings,
  temporal: TemporalClient,
  workflowId: string,
  seconds: number,
): Promise<Outcome | null> {
  if (seconds <= 0) return null;
  if (!settings.webhookKeys.length) return temporal.waitForClose(workflowId, Date.now() + seconds * 1000);
  const stub = env.RUN_WAITER.get(env.RUN_WAITER.idFromName(workflowId));
  const delivered = await stub.wait(seconds * 1000);
  if (delivered) return delivered;
  // No webhook: has the run closed all the same (a lost or misconfigured webhook)?
  const exec = await temporal.describe(workflowId);
  if (!isTerminal(exec.status)) return null;
  const { outcome } = await temporal.closeEvent(workflowId, { wait: false });
  return outcome ? { ...outcome, runId: exec.runId } : { status: exec.status, runId: exec.runId, result: null, error: null };
}
