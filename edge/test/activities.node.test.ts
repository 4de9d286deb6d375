// The committed edge-activity manifest (schemas/edge-activities/ and the manifest's
// `edge_activities`, which the worker's build registers from) is exactly what the activity
// definitions in src/activities/ export: change one without `npm run activities` and this fails.
// And wrangler.jsonc gives activities a KV namespace apart from the edge's records.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { EDGE_ACTIVITIES } from "../src/activities";
import { FOLDER, renderActivityManifest } from "../scripts/activity-manifest.mjs";

const schemas = resolve(__dirname, "..", "..", "schemas");

/** wrangler.jsonc without its comments (all of them whole lines). */
function wranglerConfig(): any {
  const text = readFileSync(resolve(__dirname, "..", "wrangler.jsonc"), "utf8");
  return JSON.parse(
    text
      .split("\n")
      .filter((l) => !l.trim().startsWith("//"))
      .join("\n"),
  );
}

describe("edge activity manifest", () => {
  it("matches the activity definitions (run `npm run activities` after changing src/activities/)", () => {
    const files = renderActivityManifest(EDGE_ACTIVITIES, readFileSync(join(schemas, "manifest.json"), "utf8")) as Record<string, string>;
    const committed = readdirSync(join(schemas, FOLDER)).map((n) => `${FOLDER}/${n}`).sort();
    expect(committed).toEqual(Object.keys(files).filter((p) => p.startsWith(`${FOLDER}/`)).sort());
    for (const [path, text] of Object.entries(files)) expect(readFileSync(join(schemas, path), "utf8"), path).toBe(text);
  });

  it("gives every schema the protocol's shape: draft 2020-12, closed objects, bounded strings", () => {
    const walk = (s: any, at: string): void => {
      if (!s || typeof s !== "object") return;
      if (s.type === "object" && s.properties) expect(s.additionalProperties, `${at} must be closed`).toBe(false);
      if (s.type === "string" && !s.enum) expect(s.maxLength, `${at} must bound its length`).toBeTypeOf("number");
      for (const [k, v] of Object.entries(s)) walk(v, `${at}/${k}`);
    };
    for (const a of EDGE_ACTIVITIES) {
      for (const side of ["input", "output"] as const) {
        expect(a[side].$schema, `${a.name} ${side}`).toBe("https://json-schema.org/draft/2020-12/schema");
        walk(a[side], `${a.name}.${side}`);
      }
    }
  });

  it("keeps what activities write apart from the edge's records in wrangler.jsonc, and the request signal on", () => {
    const c = wranglerConfig();
    const kv = Object.fromEntries(c.kv_namespaces.map((n: any) => [n.binding, n.id]));
    expect(kv.ACTIVITY_KV).toBeTruthy();
    // One namespace bound twice would let kv.put reach the run hints (it still refuses run: keys).
    expect(kv.ACTIVITY_KV).not.toBe(kv.RUN_STATUS);
    expect(c.d1_databases.map((d: any) => d.binding)).toEqual(["ACTIVITY_DB"]);
    expect(c.durable_objects.bindings).toContainEqual({ name: "ACTIVITY_TOKENS", class_name: "ActivityTokens" });
    expect(c.compatibility_flags).toContain("enable_request_signal");
  });
});
