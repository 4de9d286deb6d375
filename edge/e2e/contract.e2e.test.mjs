// The OpenAPI contract, checked by schemathesis (PyPI; scripts/setup installs it into
// .tools/venv) against the edge in workerd and a real Temporal dev server: every answer
// must be documented (status, content type, headers, body schema) and none may be a 5xx.
// The spec it reads is openapi.yaml with the real inputs filled in: `{name}` is `order`
// with the exported order schema as its body, signals are `approve`/`reject` with their
// exported payload schema, so generated requests reach the edge's checks and Temporal.
// Calls carry a valid admin token. SCHEMATHESIS_EXAMPLES widens the run (default 15).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { parse, stringify } from "yaml";
import { EDGE_DIR, REPO_DIR, startStack } from "./harness.mjs";

const SCHEMATHESIS = process.env.SCHEMATHESIS || join(REPO_DIR, ".tools", "venv", "bin", "schemathesis");
const EXAMPLES = process.env.SCHEMATHESIS_EXAMPLES || "15";

let stack;
let dir;
before(async () => {
  // Waits capped at 1 s: generated `Prefer: wait=N` would otherwise hold open runs for N seconds.
  stack = await startStack({ edgeOverrides: { MAX_WAIT_SECONDS: "1" } });
  dir = mkdtempSync(join(tmpdir(), "edgeflow-contract-"));
});
after(async () => {
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A JSON Schema file with its `$defs` moved into `components.schemas` (OpenAPI resolves `$ref`s from the document root). */
function inline(spec, file) {
  const schema = JSON.parse(readFileSync(join(REPO_DIR, "schemas", file), "utf8"));
  const { $defs = {}, $schema, ...rest } = schema;
  Object.assign(spec.components.schemas, $defs);
  return JSON.parse(JSON.stringify(rest).replaceAll("#/$defs/", "#/components/schemas/"));
}

function specWithRealInputs() {
  const spec = parse(readFileSync(join(EDGE_DIR, "openapi.yaml"), "utf8"));
  const manifest = JSON.parse(readFileSync(join(REPO_DIR, "schemas", "manifest.json"), "utf8"));
  const order = manifest.workflows.find((w) => w.name === "order");
  spec.servers = [{ url: stack.edge.url }];
  const start = spec.paths["/v1/workflows/{name}"].post;
  start.parameters = start.parameters.map((p) => (p.$ref?.endsWith("/WorkflowName") ? { name: "name", in: "path", required: true, schema: { enum: ["order"] } } : p));
  start.requestBody.content["application/json"].schema = inline(spec, order.input);
  const signal = spec.paths["/v1/runs/{id}/signals/{name}"].post;
  signal.parameters = signal.parameters.map((p) => (p.$ref?.endsWith("/SignalName") ? { name: "name", in: "path", required: true, schema: { enum: order.updates.map((u) => u.name) } } : p));
  signal.requestBody.content["application/json"].schema = inline(spec, order.updates[0].input);
  return spec;
}

it("every answer of the edge in workerd is documented in openapi.yaml, and none is a 5xx (schemathesis)", { timeout: 600_000 }, async () => {
  assert.ok(existsSync(SCHEMATHESIS), `${SCHEMATHESIS} is missing: run scripts/setup (it installs schemathesis into .tools/venv)`);
  const admin = await stack.issuer.mint({ sub: "contract-admin", roles: ["admin"], ttl: 3600 });
  const specFile = join(dir, "openapi.yaml");
  writeFileSync(specFile, stringify(specWithRealInputs()));
  // Not spawnSync: the token issuer serving the edge its keys lives in this process's event loop.
  const child = spawn(
    SCHEMATHESIS,
    [
      "run",
      specFile,
      "--url",
      stack.edge.url,
      "--header",
      `Authorization: Bearer ${admin}`,
      "--checks",
      "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
      "--max-examples",
      EXAMPLES,
      "--workers",
      "1",
      "--request-timeout",
      "20",
      "--seed",
      process.env.SCHEMATHESIS_SEED || "1",
      "--no-color",
    ],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const status = await new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  const run = { status, stdout: out, stderr: "" };
  const output = `${run.stdout}\n${run.stderr}`;
  const summary = output.split("\n").filter((l) => /test cases|generated|passed|failures?,/i.test(l));
  console.log(summary.map((l) => `# ${l.trim()}`).join("\n"));
  if (run.status !== 0) console.log(output.split("\n").slice(-120).join("\n"));
  assert.equal(run.status, 0, "schemathesis found answers openapi.yaml does not describe (output above)");
});
