// ActivityTokens: the edge-activity token ids (`jti`) already accepted, each kept until its
// token has expired, so a token is accepted once across isolates, colos and restarts (an
// in-memory set would forget on every new isolate). Sharded by the jti's first two characters
// (random base64url: up to 4,096 objects), so no single object carries every request. A
// Durable Object's storage is strongly consistent and its input gate runs one `claim` at a
// time, so two requests with one jti cannot both win. Expired ids go lazily on each claim and
// by an alarm set at the oldest expiry, so an idle shard empties itself.
import { DurableObject } from "cloudflare:workers";

export class ActivityTokens extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS seen (jti TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL)");
    ctx.storage.sql.exec("CREATE INDEX IF NOT EXISTS seen_by_expiry ON seen (expires_ms)");
  }

  /** "fresh" the first time `jti` is claimed (recorded until `expiresMs`), "replayed" after. */
  async claim(jti: string, expiresMs: number): Promise<"fresh" | "replayed"> {
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM seen WHERE expires_ms < ?", Date.now());
    if (sql.exec("SELECT 1 FROM seen WHERE jti = ?", jti).toArray().length) return "replayed";
    sql.exec("INSERT INTO seen (jti, expires_ms) VALUES (?, ?)", jti, expiresMs);
    const alarm = await this.ctx.storage.getAlarm();
    if (alarm === null || alarm > expiresMs) await this.ctx.storage.setAlarm(expiresMs);
    return "fresh";
  }

  /** How many ids this shard holds (tests, and the docs' sizing). */
  async size(): Promise<number> {
    return Number(this.ctx.storage.sql.exec("SELECT COUNT(*) AS n FROM seen").one().n);
  }

  override async alarm(): Promise<void> {
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM seen WHERE expires_ms <= ?", Date.now());
    const next = sql.exec("SELECT MIN(expires_ms) AS e FROM seen").one().e;
    if (next !== null) await this.ctx.storage.setAlarm(Number(next));
  }
}

/** Claims a verified token's id in its shard; "replayed" when it was accepted before. */
export async function claimTokenId(env: Env, jti: string, expSeconds: number, toleranceSeconds: number): Promise<"fresh" | "replayed"> {
  const shard = env.ACTIVITY_TOKENS.get(env.ACTIVITY_TOKENS.idFromName(`jti:${jti.slice(0, 2)}`));
  // Kept past `exp` by the clock tolerance the verifier grants, so no accepted token outlives its record.
  return shard.claim(jti, (expSeconds + toleranceSeconds) * 1000 + 1000);
}
