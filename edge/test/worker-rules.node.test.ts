// One rule set: on generated inputs, the edge accepts exactly what the worker
// accepts and names the same fields. Inputs come from the exported order
// schema plus hostile mutations (numbers past 2^53 - 1, floats, exponents,
// lone surrogates in values and keys, emails the pattern must refuse, unknown
// and missing fields, wrong totals, deep nesting, long strings); each is
// written as JSON Lines exactly as a client would send it, and the worker's
// own verdicts come from `edgeflow schema check` (the worker's code, built by
// `cargo test` earlier in scripts/test). The edge's verdicts come from the
// same functions its routes use (schemas.ts `parseJson` and `inputProblems`).
// Runs in Node (the "node" vitest project), since it starts a process.
// EDGEFLOW_BIN names another binary; FC_SEED / FC_RUNS replay or widen a run.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { manifest, schemaFiles } from "../src/generated/catalog";
import { HttpProblem } from "../src/problem";
import { Catalog, inputProblems, parseJson, type Manifest, type MessageDef, type WorkflowDef } from "../src/schemas";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.EDGEFLOW_BIN ?? resolve(REPO, "target/debug/edgeflow");
const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
const RUNS = Number(process.env.FC_RUNS ?? 400);
// The edge's defaults (wrangler.jsonc): what a deployed edge reads and parses.
const LIMITS = { maxBytes: 65536, maxDepth: 32 };

const catalog = Catalog.fromManifest(manifest satisfies Manifest, schemaFiles);

// ── JSON text with numbers written exactly as given ───────────────────────────
/** A number literal sent as is (`18446744073709551616`, `1e20`, `9470.0`), which no JS number can spell. */
class Lit {
  constructor(readonly text: string) {}
}
type J = Lit | string | number | boolean | null | J[] | { [key: string]: J };

function text(v: J): string {
  if (v instanceof Lit) return v.text;
  if (Array.isArray(v)) return `[${v.map(text).join(",")}]`;
  if (v && typeof v === "object") return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${text(x)}`).join(",")}}`;
  // JSON.stringify writes a lone surrogate as a \ud800 escape: valid JSON on one line.
  return JSON.stringify(v);
}

// ── Generators ───────────────────────────────────────────────────────────────
const lone = fc.constantFrom("\ud800", "\udbff", "\udc00", "\udfff");
/** A string with a lone surrogate somewhere in it. */
const withLone = fc.tuple(fc.string({ maxLength: 5 }), lone, fc.string({ maxLength: 5 })).map(([a, s, b]) => a + s + b);
const hostileNumber = fc.constantFrom(
  "9007199254740991",
  "9007199254740992",
  "9007199254740993",
  "18446744073709551615",
  "18446744073709551616",
  "1e20",
  "1E3",
  "1e400",
  "-1",
  "0",
  "0.0",
  "2500.0",
  "9470.0",
  "1.5",
  "-0",
  "1e-400",
  "4294967296",
).map((t) => new Lit(t));
const deep: fc.Arbitrary<J> = fc.integer({ min: 1, max: 40 }).map((n) => {
  let v: J = "x";
  for (let i = 0; i < n; i++) v = i % 2 ? { a: v } : [v];
  return v;
});
const wrongType: fc.Arbitrary<J> = fc.oneof(fc.constant(null), fc.boolean(), fc.constant([]), fc.constant({}), fc.integer(), deep);
const longString = fc.integer({ min: 60, max: 70_000 }).map((n) => "x".repeat(n));
/** The good value, or (when `hostile`) sometimes a bad one. */
const pick =
  (hostile: boolean) =>
  (good: fc.Arbitrary<J>, ...bad: fc.Arbitrary<J>[]): fc.Arbitrary<J> =>
    hostile ? fc.oneof({ arbitrary: good, weight: 8 }, ...bad.map((b) => ({ arbitrary: b, weight: 1 }))) : good;

const goodEmail = fc.oneof(fc.emailAddress(), fc.constantFrom("alice@example.com", "a@b.co", "first.last+tag@sub.example.org"));
const badEmail = fc.constantFrom(
  "a@localhost",
  "a@-b.com",
  "a@b-.com",
  "a@b..com",
  "ä@example.com",
  "a@exämple.com",
  "a@example.com ",
  " a@example.com",
  "a@exa_mple.com",
  "@example.com",
  "a@",
  "a@b.c",
  `${"a".repeat(250)}@b.co`,
  "a@" + "b".repeat(64) + ".com",
);

interface Line {
  sku: J;
  quantity: J;
  unit_price_cents: J;
  name?: J;
}

function lineItem(hostile: boolean): fc.Arbitrary<Line> {
  const or = pick(hostile);
  return fc.record(
    {
      sku: or(fc.string({ minLength: 1, maxLength: 64 }), fc.constant(""), fc.string({ minLength: 65, maxLength: 80 }), withLone, wrongType),
      quantity: or(fc.integer({ min: 1, max: 1000 }), hostileNumber, fc.integer({ min: -5, max: 2000 }), wrongType),
      unit_price_cents: or(fc.integer({ min: 0, max: 2_000_000 }), hostileNumber, wrongType),
      name: or(fc.oneof(fc.string({ minLength: 1, maxLength: 200 }), fc.constant(null)), fc.constant(""), withLone, longString),
    },
    { requiredKeys: ["sku", "quantity", "unit_price_cents"] },
  ) as fc.Arbitrary<Line>;
}

/** The lines' total when every number is a plain integer, as the worker would compute it. */
function total(items: Line[]): bigint | null {
  let sum = 0n;
  for (const i of items) {
    if (!Number.isInteger(i.quantity) || !Number.isInteger(i.unit_price_cents)) return null;
    sum += BigInt(i.quantity as number) * BigInt(i.unit_price_cents as number);
  }
  return sum;
}

/** An order as the schema describes it, or (when `hostile`) with some of the mutations above. */
function orderText(hostile: boolean): fc.Arbitrary<string> {
  const or = pick(hostile);
  return fc
    .record({
      order_id: or(fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), fc.constantFrom("bad id!", "", "x".repeat(65)), withLone),
      customer_email: or(goodEmail, badEmail, badEmail, withLone, wrongType),
      customer_name: or(fc.option(fc.string({ minLength: 1, maxLength: 100 })), fc.constant(""), withLone, longString),
      items: or(fc.array(lineItem(hostile), { minLength: 1, maxLength: 4 }), fc.constant([]), fc.array(lineItem(false), { minLength: 101, maxLength: 102 }), wrongType),
      currency: or(fc.stringMatching(/^[A-Z]{3}$/), fc.constantFrom("eur", "EURO", "€UR", ""), withLone),
      amount: hostile ? fc.constantFrom("right", "right", "right", "off by one", "zero", "hostile") : fc.constant("right"),
      hostileAmount: hostileNumber,
      drop: hostile ? fc.subarray(["order_id", "customer_email", "items", "amount_cents", "currency", "customer_name"], { maxLength: 2 }) : fc.constant([]),
      extra: hostile ? fc.option(fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), withLone), fc.oneof(fc.string(), fc.integer(), deep)), { freq: 4 }) : fc.constant(null),
    })
    .map((g) => {
      const items = Array.isArray(g.items) ? (g.items as unknown as Line[]) : [];
      const t = total(items);
      let amount: J = g.hostileAmount;
      if (g.amount === "right" && t !== null) amount = new Lit(String(t));
      else if (g.amount === "off by one" && t !== null) amount = new Lit(String(t + 1n));
      else if (g.amount === "zero") amount = 0;
      const o: Record<string, J> = { order_id: g.order_id, customer_email: g.customer_email, items: g.items, amount_cents: amount, currency: g.currency };
      if (g.customer_name !== null) o.customer_name = g.customer_name;
      for (const k of g.drop) delete o[k];
      if (g.extra) o[g.extra[0]] = g.extra[1];
      return text(o);
    });
}
const order = fc.oneof(orderText(false), orderText(true), orderText(true));

function decisionText(hostile: boolean): fc.Arbitrary<string> {
  const or = pick(hostile);
  return fc
    .record({
      approver: or(fc.string({ minLength: 1, maxLength: 200 }), fc.constant(""), fc.string({ minLength: 201, maxLength: 210 }), withLone, wrongType),
      reason: or(fc.option(fc.string({ maxLength: 1000 })), fc.string({ minLength: 1001, maxLength: 1005 }), withLone, wrongType),
      drop: hostile ? fc.subarray(["approver", "reason"], { maxLength: 1 }) : fc.constant([]),
      extra: hostile ? fc.option(fc.tuple(fc.oneof(fc.constantFrom("approved", "by"), withLone), fc.string()), { freq: 5 }) : fc.constant(null),
    })
    .map((g) => {
      const d: Record<string, J> = { approver: g.approver, reason: g.reason };
      for (const k of g.drop) delete d[k];
      if (g.extra) d[g.extra[0]] = g.extra[1];
      return text(d);
    });
}
const decision = fc.oneof(decisionText(false), decisionText(true), decisionText(true));

// ── Verdicts ─────────────────────────────────────────────────────────────────
interface Verdict {
  ok: boolean;
  /** Field paths, sorted and without repeats; null when the edge refused the body as a whole (400/413). */
  paths: string[] | null;
}

function edgeVerdict(line: string, check: (value: unknown) => { path: string }[]): Verdict {
  let value: unknown;
  try {
    value = parseJson(new TextEncoder().encode(line), LIMITS);
  } catch (e) {
    if (e instanceof HttpProblem) return { ok: false, paths: null };
    throw e;
  }
  const errors = check(value);
  return { ok: errors.length === 0, paths: [...new Set(errors.map((e) => e.path))].sort() };
}

function workerVerdicts(lines: string[], workflow: string, message?: string): Verdict[] {
  if (!existsSync(BIN)) {
    throw new Error(`${BIN} is missing: build the worker first (\`cargo build -p edgeflow\`; scripts/test builds it with \`cargo test\`), or set EDGEFLOW_BIN`);
  }
  const args = ["schema", "check", workflow, ...(message ? ["--message", message] : []), "-"];
  const run = spawnSync(BIN, args, { cwd: REPO, input: lines.join("\n") + "\n", encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (run.status !== 0 && run.status !== 1) throw new Error(`${BIN} ${args.join(" ")} exited ${run.status}: ${run.stderr}`);
  const out = run.stdout.trim().split("\n");
  expect(out, "one verdict per line").toHaveLength(lines.length);
  return out.map((l) => {
    const v = JSON.parse(l) as { ok: boolean; errors?: { path: string }[] };
    return { ok: v.ok, paths: [...new Set((v.errors ?? []).map((e) => e.path))].sort() };
  });
}

function compare(lines: string[], edge: Verdict[], worker: Verdict[]): string[] {
  const mismatches: string[] = [];
  lines.forEach((line, i) => {
    const [e, w] = [edge[i], worker[i]];
    // A body the edge refuses whole (too large, too deep, a number out of range) the worker must refuse too.
    const same = e.paths === null ? !w.ok : e.ok === w.ok && JSON.stringify(e.paths) === JSON.stringify(w.paths);
    if (!same) mismatches.push(`edge ${JSON.stringify(e)} worker ${JSON.stringify(w)}: ${line.length > 400 ? line.slice(0, 400) + "…" : line}`);
  });
  return mismatches;
}

function holdsEqual(name: string, arb: fc.Arbitrary<string>, workflow: string, check: (value: unknown) => { path: string }[], message?: string) {
  it(`${name}: the edge's verdict equals the worker's on ${RUNS} generated inputs (seed ${SEED})`, () => {
    const lines = fc.sample(arb, { numRuns: RUNS, seed: SEED });
    const edge = lines.map((l) => edgeVerdict(l, check));
    const worker = workerVerdicts(lines, workflow, message);
    expect(compare(lines, edge, worker), `FC_SEED=${SEED} replays this run`).toEqual([]);
    // The run is worth something only if it saw both answers.
    expect(edge.filter((v) => v.ok).length, "accepted inputs").toBeGreaterThan(RUNS / 20);
    expect(edge.filter((v) => !v.ok).length, "refused inputs").toBeGreaterThan(RUNS / 5);
  });
}

const wf = catalog.get("order") as WorkflowDef;
describe("the edge and the worker apply one rule set", () => {
  holdsEqual("order input", order, "order", (v) => inputProblems(wf.validator, v, wf.rule));
  for (const name of ["approve", "reject"]) {
    const m = wf.message(name) as MessageDef;
    holdsEqual(`${name} payload`, decision, "order", (v) => inputProblems(m.validator, v), name);
  }

  it("agrees on the reproductions of issue 10", () => {
    const lines = [
      `{"order_id":"o1","customer_email":"a@example.com","items":[{"sku":"s","quantity":1,"unit_price_cents":9007199254740993}],"amount_cents":9007199254740993,"currency":"EUR"}`,
      `{"order_id":"o1","customer_email":"a@example.com","items":[{"sku":"s","quantity":1,"unit_price_cents":18446744073709551616}],"amount_cents":18446744073709551616,"currency":"EUR"}`,
      `{"order_id":"o1","customer_email":"a@example.com","items":[{"sku":"s","quantity":1,"unit_price_cents":1e20}],"amount_cents":1e20,"currency":"EUR"}`,
      `{"order_id":"o1","customer_email":"a@example.com","items":[{"sku":"s","quantity":2,"unit_price_cents":4735}],"amount_cents":9470.0,"currency":"EUR"}`,
      `{"order_id":"o1","customer_email":"a@localhost","items":[{"sku":"s","quantity":1,"unit_price_cents":5}],"amount_cents":5,"currency":"EUR"}`,
      `{"order_id":"o1","customer_email":"a@example.com","customer_name":"\\ud800","items":[{"sku":"s","quantity":1,"unit_price_cents":5}],"amount_cents":5,"currency":"EUR"}`,
    ];
    const edge = lines.map((l) => edgeVerdict(l, (v) => inputProblems(wf.validator, v, wf.rule)));
    expect(compare(lines, edge, workerVerdicts(lines, "order"))).toEqual([]);
    expect(edge.map((v) => v.ok)).toEqual([false, false, false, true, false, false]);
  });
});
