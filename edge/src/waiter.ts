// RunWaiter: one Durable Object per workflow id. Callers holding a
// `Prefer: wait` request park here; the completion webhook delivers the run's
// outcome here, which wakes them all at once. It also remembers which
// `webhook-id`s it has delivered (strongly consistent, unlike KV), so a replayed
// webhook is dropped. State is kept for an hour, far past the 5-minute window
// in which a webhook can be replayed at all.
import { DurableObject } from "cloudflare:workers";
import type { Outcome } from "./temporal";

const KEEP_MS = 60 * 60 * 1000;

export class RunWaiter extends DurableObject<Env> {
  private waiting = new Set<(o: Outcome | null) => void>();

  /** The outcome, as soon as it is delivered (at once if it already was); null after `timeoutMs`. */
  async wait(timeoutMs: number): Promise<Outcome | null> {
    const known = await this.ctx.storage.get<Outcome>("outcome");
    if (known) return known;
    return new Promise((resolve) => {
      const done = (o: Outcome | null) => {
        clearTimeout(timer);
        this.waiting.delete(done);
        resolve(o);
      };
      const timer = setTimeout(() => done(null), Math.max(0, timeoutMs));
      this.waiting.add(done);
    });
  }

  /** Records the outcome under `webhookId`; "duplicate" (and nothing changes) when that id was delivered before. */
  async deliver(webhookId: string, outcome: Outcome): Promise<"accepted" | "duplicate"> {
    const key = `hook:${webhookId}`;
    if (await this.ctx.storage.get(key)) return "duplicate";
    await this.ctx.storage.put({ [key]: Date.now(), outcome });
    await this.ctx.storage.setAlarm(Date.now() + KEEP_MS);
    for (const wake of [...this.waiting]) wake(outcome);
    return "accepted";
  }

  /** Un-records a webhook id whose delivery failed later on, so the sender's retry is not taken for a replay. */
  async forget(webhookId: string): Promise<void> {
    await this.ctx.storage.delete(`hook:${webhookId}`);
  }

  async alarm(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }
}
