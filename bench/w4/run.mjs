// Bench W4 (part): the dispatch overhead of an edge activity over http.call, on loopback.
// Starts what the edge e2e tests start (edge/e2e/harness.mjs): the Temporal dev server (in
// memory), the edge in workerd with the worker's public key, `edgeflow worker` with
// [edge_activities] on and the demo services; then bench/w4/dispatch.py drives both kinds.
// Usage: node bench/w4/run.mjs [N] [CONCURRENCY]   (EDGEFLOW_BIN picks the binary; default debug)
// W4_RELAY=1 puts a plain TCP relay (Node `net`, bytes copied both ways) between the worker and
// workerd: how runs got past the stall after ~167 edge calls before its cause (workerd's output
// pipe left unread, results/20261206-w4-dispatch-partial.md) was found and fixed.
import { execFile } from "node:child_process";
import { createConnection, createServer } from "node:net";
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
  // With W4_RELAY the relay takes the edge's URL and workerd listens behind it, so the URL the
  // worker calls, the Host it sends and the tokens' audience stay what they are without it.
  const edgePort = process.env.W4_RELAY ? await freePort() : port;
  const edge = await startEdgeWorkerd(edgeVars({ temporal, issuer, overrides: { ACTIVITY_KEYS: JSON.stringify({ keys: [jwk] }), EDGE_ACTIVITY_AUDIENCE: url } }), edgePort);
  stops.push(edge.stop);
  if (process.env.W4_RELAY) {
    const relay = createServer((client) => {
      const upstream = createConnection({ host: "127.0.0.1", port: edgePort });
      client.pipe(upstream).pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    await new Promise((ok) => relay.listen(port, "127.0.0.1", ok));
    stops.push(() => new Promise((ok) => relay.close(() => ok())));
    relay.unref();
  }
  const worker = await startWorker({
    temporal, webhookUrl: `${url}/v1/hooks/temporal`, webhookSecret: WEBHOOK_SECRET,
    env: { EDGEFLOW__EDGE_ACTIVITIES__URL: url, EDGEFLOW__EDGE_ACTIVITIES__KEY_ID: "w4", EDGEFLOW__EDGE_ACTIVITIES__SIGNING_KEY_FILE: keyFile, EDGEFLOW__TELEMETRY__LOG_LEVEL: process.env.W4_LOGS || "warn" },
  });
  stops.push(worker.stop);
  const python = process.env.EDGEFLOW_PYTHON || join(REPO_DIR, ".tools", "venv", "bin", "python");
  // Not execFileSync: the relay lives on this process's event loop.
  const out = await new Promise((ok, fail) =>
    execFile(python, [join(REPO_DIR, "bench", "w4", "dispatch.py"), temporal.address, n, concurrency], { encoding: "utf8", maxBuffer: 1 << 24 },
      (err, stdout, stderr) => (err ? fail(new Error(`dispatch.py failed: ${err.message}\n${stderr}`)) : ok(stdout))));
  process.stdout.write(out);
  if (process.env.W4_LOGS) console.error(`--- worker\n${worker.output()}\n--- edge\n${edge.output?.() ?? ""}`);
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
