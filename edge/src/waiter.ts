// RunWaiter: one Durable Object per workflow id. Callers holding a
// `Prefer: wait` request park here; once the edge has read from Temporal how the
// run ended (runs.ts `settle`, started by a completion callback or webhook), it
// delivers that outcome here, which wakes them all at once. Only outcomes read
// from Temporal are ever delivered: a completion event alone delivers nothing.
// It also remembers which `webhook-id`s it has seen (strongly consistent, unlike
// KV), so a replayed webhook is dropped. State is kept for an hour, far past the
// 5-minute window in which a webhook can be replayed at all.
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

  /** Records the run's outcome as Temporal reported it, and wakes every waiter. */
  async deliver(outcome: Outcome): Promise<void> {
    await this.ctx.storage.put("outcome", outcome);
    await this.ctx.storage.setAlarm(Date.now() + KEEP_MS);
    for (const wake of [...this.waiting]) wake(outcome);
  }

  /** Has the outcome been delivered already? */
  async delivered(): Promise<boolean> {
    return (await this.ctx.storage.get("outcome")) !== undefined;
  }

  /** Records a webhook id: "duplicate" (and nothing else happens) when it was seen before. */
  async claim(webhookId: string): Promise<"accepted" | "duplicate"> {
    const key = `hook:${webhookId}`;
    if (await this.ctx.storage.get(key)) return "duplicate";
    await this.ctx.storage.put(key, Date.now());
    await this.ctx.storage.setAlarm(Date.now() + KEEP_MS);
    return "accepted";
  }

  async alarm(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }
}
