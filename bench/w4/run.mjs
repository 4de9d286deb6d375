// Bench W4 (part): the dispatch overhead of an edge activity over http.call, on loopback.
// Starts what the edge e2e tests start (edge/e2e/harness.mjs): the Temporal dev server (in
// memory), the edge in workerd with the worker's public key, `edgeflow worker` with
// [edge_activities] on and the demo services; then bench/w4/dispatch.py drives both kinds.
// Usage: node bench/w4/run.mjs [N] [CONCURRENCY]   (EDGEFLOW_BIN picks the binary; default debug)
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_DIR, WEBHOOK_SECRET, edgeVars, freePort, startEdgeWorkerd, startIssuer, startTemporal, startWorker } from "../../edge/e2e/harness.mjs";

const [n = "300", concurrency = "20"] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), "edgeflow-w4-"));
const stops = [];
try {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const keyFile = join(dir, "key.pem");
  writeFileSync(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }));
  const jwk = { ...publicKey.export({ format: "jwk" }), kid: "w4", alg: "ES256", use: "sig" };
  const temporal = await startTemporal();
  stops.push(temporal.stop);
  const issuer = await startIssuer();
  stops.push(issuer.stop);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const edge = await startEdgeWorkerd(edgeVars({ temporal, issuer, overrides: { ACTIVITY_KEYS: JSON.stringify({ keys: [jwk] }), EDGE_ACTIVITY_AUDIENCE: url } }), port);
  stops.push(edge.stop);
  const worker = await startWorker({
    temporal, webhookUrl: `${url}/v1/hooks/temporal`, webhookSecret: WEBHOOK_SECRET,
    env: { EDGEFLOW__EDGE_ACTIVITIES__URL: url, EDGEFLOW__EDGE_ACTIVITIES__KEY_ID: "w4", EDGEFLOW__EDGE_ACTIVITIES__SIGNING_KEY_FILE: keyFile, EDGEFLOW__TELEMETRY__LOG_LEVEL: process.env.W4_LOGS || "warn" },
  });
  stops.push(worker.stop);
  const python = process.env.EDGEFLOW_PYTHON || join(REPO_DIR, ".tools", "venv", "bin", "python");
    const out = execFileSync(python, [join(REPO_DIR, "bench", "w4", "dispatch.py"), temporal.address, n, concurrency], { encoding: "utf8" });
  process.stdout.write(out);
  if (process.env.W4_LOGS) console.error(`--- worker\n${worker.output()}\n--- edge\n${edge.output?.() ?? ""}`);
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
