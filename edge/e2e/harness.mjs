// End-to-end harness: real processes on free loopback ports, each started by one
// function that returns its URLs and a `stop()`.
//   startTemporal()  the Temporal dev server, started the project's one way (`edgeflow dev server
//                    --json`: in memory, the edge's search attributes, completion callbacks
//                    allowed to loopback, a start that lost a port race tried again)
//   startIssuer()    a local OIDC-like token issuer (JWKS over HTTP, tokens minted with jose)
//   startEdgeWorkerd(vars)  the edge Worker in workerd run through Miniflare's API
//                    (scripts/serve-workerd.mjs): the deployable bundle, wrangler.jsonc's
//                    bindings, variables from an env file, clients connected straight to
//                    workerd's socket, none of wrangler dev's proxy layer
//   startEdge(vars)  the same Worker in `wrangler dev` (what `edgeflow dev` runs)
//   startGateway(temporal)  `edgeflow gateway` (the Rust binary) in front of the dev server,
//                    trusting a key made for the run; returns the edge variables that use it
//   startWorker(o)   the Rust worker (`edgeflow worker`, target/debug or EDGEFLOW_BIN) with the
//                    demo services (`edgeflow dev services`), SQLite and an email outbox
//   startStack(o)    Temporal, issuer and edge wired together, the edge's completion callbacks
//                    on (`o.runtime`: "workerd" (default, or E2E_EDGE_RUNTIME) or "wrangler";
//                    `o.transport`: "temporal_http" (default, or E2E_TRANSPORT) or "gateway",
//                    which puts startGateway() between the edge and Temporal); `o.startWorker`
//                    (e.g. `startWorker`) adds a worker once the rest is up.
// Processes run in their own process group so stop() ends them and their children only.
import { spawn } from "node:child_process";
import { createHash, createHmac, randomUUID } from "node:crypto";
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { connect, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { exportJWK, generateKeyPair, SignJWT } from "jose";

export const EDGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = resolve(EDGE_DIR, "..");
export const WEBHOOK_SECRET = `whsec_${Buffer.from("e2e-webhook-secret-e2e-webhook-secret").toString("base64")}`;
export const CALLBACK_SECRET = `whsec_${Buffer.from("e2e-callback-secret-e2e-callback-secret").toString("base64")}`;

/** The search attributes' names, as the worker exports them (schemas/manifest.json): `{ subject, request_id }`. */
export const SEARCH_ATTRIBUTES = Object.fromEntries(
  Object.entries(JSON.parse(readFileSync(join(REPO_DIR, "schemas", "manifest.json"), "utf8")).search_attributes).map(
    ([holds, { name }]) => [holds, name],
  ),
);

const OFFLINE_ENV = { CI: "true", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" };

export function temporalCli() {
  if (process.env.TEMPORAL_CLI) return process.env.TEMPORAL_CLI;
  const bundled = join(REPO_DIR, ".tools", "venv", "bin", "temporal");
  return existsSync(bundled) ? bundled : "temporal";
}

/**
 * A loopback port that is free, and that the kernel will not hand out again for a minute. A port
 * only bound and released can come back from the next bind to port 0, of this process or another
 * (the Temporal dev server picks its internal ports that way). So a connection is made to it and
 * closed from the listening side first: that side waits in TIME_WAIT (60 s on Linux), which keeps
 * port-0 binds off the port, while a listener with SO_REUSEADDR (Node, Go, Rust, workerd all set
 * it) can still bind it. testkit's free_port does the same.
 */
export async function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createTcpServer((listeningSide) => {
      // The listening side closes first, so its socket is the one left in TIME_WAIT.
      listeningSide.destroy();
      srv.close(() => resolvePort(port));
    });
    let port = 0;
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      port = srv.address().port;
      const client = connect(port, "127.0.0.1");
      client.on("error", () => {});
      client.on("close", () => client.destroy());
      client.on("end", () => client.destroy());
    });
  });
}

const running = new Set();
process.on("exit", () => {
  for (const child of running) killGroup(child, "SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => process.exit(128 + (signal === "SIGINT" ? 2 : 15)));
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

// Every child's stdout and stderr go to a file, never to a pipe this process reads: a test or
// bench that blocks its own event loop (execFileSync of a driver) would stop reading, the pipe
// would fill, and the child would block on its next log line. workerd writes the Worker's console
// lines from its only event-loop thread, so a full pipe stalled the whole edge (bench W4: every
// edge call after ~167 got no answer: bench/results/20261206-w4-dispatch-partial.md).
const LOG_DIR = mkdtempSync(join(tmpdir(), "edgeflow-e2e-logs-"));
process.on("exit", () => rmSync(LOG_DIR, { recursive: true, force: true }));
const TAIL_BYTES = 64 * 1024;
let launched = 0;

/** A file's bytes from `start` (negative: that many from the end). */
function readFrom(file, start) {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const from = start < 0 ? Math.max(0, size + start) : Math.min(start, size);
    const buf = Buffer.alloc(size - from);
    readSync(fd, buf, 0, buf.length, from);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Spawns a process in its own group, its output in a log file whose tail failure messages show. */
function launch(name, cmd, args, opts = {}) {
  const logFile = join(LOG_DIR, `${++launched}-${name}.log`);
  const out = openSync(logFile, "a");
  const child = spawn(cmd, args, { ...opts, detached: true, stdio: ["ignore", out, out] });
  closeSync(out);
  running.add(child);
  let shown = 0;
  const show = () => {
    const fresh = readFrom(logFile, shown);
    shown += fresh.length;
    for (const line of fresh.toString().split("\n").filter(Boolean)) process.stderr.write(`[${name}] ${line}\n`);
  };
  const verbose = process.env.E2E_VERBOSE ? setInterval(show, 200).unref() : undefined;
  const exited = new Promise((r) => child.on("exit", (code, sig) => r({ code, sig })));
  child.on("exit", () => {
    running.delete(child);
    if (verbose) {
      clearInterval(verbose);
      show();
    }
  });
  return {
    child,
    exited,
    /** The last 200 lines (for failure messages). */
    output: () => readFrom(logFile, -TAIL_BYTES).toString().split("\n").slice(-200).join("\n"),
    /** Everything it has written. */
    log: () => readFileSync(logFile, "utf8"),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killGroup(child, "SIGTERM");
      const t = setTimeout(() => killGroup(child, "SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Polls `url` until it answers `ok(res)`; fails early if `proc` exits. */
async function waitFor(url, proc, name, timeoutMs = 60_000, ok = (r) => r.ok) {
  const deadline = Date.now() + timeoutMs;
  let exited = null;
  proc.exited.then((e) => (exited = e));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${name} exited (${JSON.stringify(exited)}) before it was ready:\n${proc.output()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (ok(res)) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await proc.stop();
  throw new Error(`${name} not ready at ${url} within ${timeoutMs} ms:\n${proc.output()}`);
}

/**
 * A Temporal dev server from `edgeflow dev server --json` (the Rust binary; the one way the project
 * starts one), which prints where it listens as one JSON line once it answers.
 */
export async function startTemporal({ namespace = "default" } = {}) {
  const proc = launch("temporal", edgeflowBin(), ["dev", "server", "--json", "--namespace", namespace], {
    cwd: REPO_DIR,
    env: { ...process.env, EDGEFLOW_TEMPORAL_CLI: temporalCli() },
  });
  const deadline = Date.now() + 90_000;
  let exited = null;
  proc.exited.then((e) => (exited = e));
  while (Date.now() < deadline) {
    const line = proc.output().split("\n").find((l) => l.startsWith("{"));
    if (line) {
      const info = JSON.parse(line);
      return { address: info.address, httpUrl: info.http_url, namespace: info.namespace, stop: () => proc.stop() };
    }
    if (exited) throw new Error(`edgeflow dev server exited (${JSON.stringify(exited)}):\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await proc.stop();
  throw new Error(`the Temporal dev server did not answer within 90 s:\n${proc.output()}`);
}

/** The `edgeflow` binary: EDGEFLOW_BIN, else the debug build `cargo test` makes. */
export function edgeflowBin() {
  return process.env.EDGEFLOW_BIN || join(REPO_DIR, "target", "debug", "edgeflow");
}

/**
 * `edgeflow gateway` in front of `temporal`, trusting an ES256 key made here (its
 * public half in a JWKS file). Returns its URL and the edge variables that route
 * the edge through it: the signing key instead of any Temporal API key.
 */
export async function startGateway(temporal) {
  const bin = edgeflowBin();
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build it (cargo build) or set EDGEFLOW_BIN`);
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = `e2e-${randomUUID().slice(0, 8)}`;
  const dir = mkdtempSync(join(tmpdir(), "edgeflow-gateway-"));
  const jwksFile = join(dir, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" }] }));
  const [port, opsPort] = [await freePort(), await freePort()];
  const proc = launch("gateway", bin, ["gateway"], {
    cwd: REPO_DIR,
    env: {
      PATH: process.env.PATH,
      EDGEFLOW_CONFIG_DIR: join(REPO_DIR, "config"),
      EDGEFLOW__TEMPORAL__ADDRESS: `http://${temporal.address}`,
      EDGEFLOW__TEMPORAL__NAMESPACE: temporal.namespace,
      EDGEFLOW__GATEWAY__LISTEN: `127.0.0.1:${port}`,
      EDGEFLOW__GATEWAY__JWKS_FILE: jwksFile,
      EDGEFLOW__OPS__LISTEN: `127.0.0.1:${opsPort}`,
      EDGEFLOW__SHUTDOWN__GRACE_PERIOD_SECS: "2",
      RUST_LOG: process.env.E2E_VERBOSE ? "info" : "warn",
    },
  });
  await waitFor(`http://127.0.0.1:${opsPort}/readyz`, proc, "edgeflow gateway");
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    edgeVars: {
      TEMPORAL_TRANSPORT: "gateway",
      TEMPORAL_HTTP_URL: url,
      TEMPORAL_API_KEY: "",
      GATEWAY_SIGNING_KEY: JSON.stringify({ ...(await exportJWK(privateKey)), kid }),
    },
    output: proc.output,
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The id the edge gives a run named after its input (an order's `order_id`) for this caller, when
 * the edge has no CALLER_HASH_KEY (edge/src/scope.ts): `<workflow>-<scope>-<id>`.
 */
export function scopedRunId(workflow, issuer, subject, naturalId) {
  const scope = createHash("sha256").update(`scope\n${issuer}\n${subject}`).digest("hex").slice(0, 20);
  return `${workflow}-${scope}-${naturalId}`;
}

/** A loopback token issuer like the one `edgeflow dev` runs: `<issuer>/.well-known/jwks.json`. */
export async function startIssuer({ audience = "edgeflow" } = {}) {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "e2e-1", alg: "RS256", use: "sig" };
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const server = createServer((req, res) => {
    if (req.url === "/.well-known/jwks.json") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ keys: [jwk] }));
    } else if (req.url === "/.well-known/openid-configuration") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/.well-known/jwks.json`, id_token_signing_alg_values_supported: ["RS256"] }));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return {
    issuer,
    audience,
    jwksUrl: `${issuer}/.well-known/jwks.json`,
    /** `iatAhead`: seconds to put `iat` in the future (a broken or forged issuer's token). */
    async mint({ sub = "alice", roles = ["customer"], email = `${sub}@example.com`, ttl = 600, iatAhead = 0 } = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ roles, email })
        .setProtectedHeader({ alg: "RS256", kid: jwk.kid, typ: "JWT" })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(sub)
        .setIssuedAt(now + iatAhead)
        .setExpirationTime(now + iatAhead + ttl)
        .sign(privateKey);
    },
    stop: () => new Promise((r) => server.close(() => r())),
  };
}

/** A temp dir holding `vars.env`: all variables and secrets, as `.dev.vars` would hold them. */
function varsDir(vars) {
  const dir = mkdtempSync(join(tmpdir(), "edgeflow-edge-"));
  const envFile = join(dir, "vars.env");
  // Single quotes keep dotenv from touching the value (ROLE_GRANTS is JSON).
  const line = ([k, v]) => {
    if (String(v).includes("'") || String(v).includes("\n")) throw new Error(`${k}: value cannot go in an env file`);
    return `${k}='${v}'`;
  };
  writeFileSync(envFile, Object.entries(vars).map(line).join("\n") + "\n");
  return { dir, envFile };
}

/**
 * Waits for the edge's /healthz (200, or 500 when misconfigured on purpose); returns the edge
 * handle. `keepDir`: the state lives elsewhere and outlives this edge (a restart test).
 */
async function edgeUp(url, proc, name, dir, keepDir = false) {
  try {
    await waitFor(`${url}/healthz`, proc, name, 90_000, (r) => r.status === 200 || r.status === 500);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url,
    output: proc.output,
    log: proc.log,
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
    /** Kills workerd and its node parent at once (SIGKILL), as a crash would. */
    async crash() {
      killGroup(proc.child, "SIGKILL");
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs the edge in `wrangler dev` with `vars` (all variables and secrets, as
 * `.dev.vars` would hold them). Its KV and Durable Object state live in a temp dir.
 */
export async function startEdge(vars, port) {
  port ??= await freePort();
  const inspectorPort = await freePort();
  const { dir, envFile } = varsDir(vars);
  const proc = launch(
    "wrangler",
    process.execPath,
    [
      join(EDGE_DIR, "node_modules", "wrangler", "bin", "wrangler.js"),
      "dev",
      "--ip", "127.0.0.1",
      "--port", String(port),
      "--inspector-port", String(inspectorPort),
      "--env-file", envFile,
      "--persist-to", join(dir, "state"),
      "--show-interactive-dev-session=false",
      "--log-level", process.env.E2E_VERBOSE ? "info" : "warn",
    ],
    { cwd: EDGE_DIR, env: { ...process.env, ...OFFLINE_ENV } },
  );
  return edgeUp(`http://127.0.0.1:${port}`, proc, "wrangler dev", dir);
}

/**
 * Runs the edge in workerd through Miniflare's API (scripts/serve-workerd.mjs) with the
 * same `vars`, env file and wrangler.jsonc bindings as `startEdge`, but without wrangler
 * dev: the bundle `wrangler deploy` would upload, served on a socket workerd listens on
 * that leads straight to the Worker. State lives in a temp dir, or in `stateDir` (kept).
 * `entry`: a test entry bundled instead of src/index.ts (e2e/fixtures/), same bindings.
 */
export async function startEdgeWorkerd(vars, port, { stateDir, entry } = {}) {
  port ??= await freePort();
  const { dir, envFile } = varsDir(vars);
  const proc = launch(
    "workerd",
    process.execPath,
    [
      join(EDGE_DIR, "scripts", "serve-workerd.mjs"),
      "--ip", "127.0.0.1",
      "--port", String(port),
      "--env-file", envFile,
      "--persist-to", stateDir ?? join(dir, "state"),
      ...(entry ? ["--entry", entry] : []),
    ],
    { cwd: EDGE_DIR, env: { ...process.env, ...OFFLINE_ENV } },
  );
  return edgeUp(`http://127.0.0.1:${port}`, proc, "workerd (scripts/serve-workerd.mjs)", dir);
}

/** The edge's variables for a stack on loopback; `callbackUrl` turns completion callbacks on. */
export function edgeVars({ temporal, issuer, callbackUrl = "", overrides = {} }) {
  return {
    ENVIRONMENT: "development",
    TEMPORAL_HTTP_URL: temporal.httpUrl,
    TEMPORAL_NAMESPACE: temporal.namespace,
    TEMPORAL_TIMEOUT_SECONDS: "10",
    OIDC_ISSUER: issuer.issuer,
    OIDC_AUDIENCE: issuer.audience,
    OIDC_JWKS_URL: issuer.jwksUrl,
    OIDC_ALGORITHMS: "RS256,ES256",
    ACCESS_TEAM_DOMAIN: "",
    ACCESS_AUD: "",
    ROLES_CLAIM: "roles",
    DEFAULT_ROLES: "",
    ROLE_GRANTS: "",
    MAX_WAIT_SECONDS: "30",
    MAX_BODY_BYTES: "65536",
    MAX_JSON_DEPTH: "32",
    TEMPORAL_API_KEY: "",
    WEBHOOK_SECRETS: WEBHOOK_SECRET,
    CALLBACK_URL: callbackUrl,
    CALLBACK_SECRETS: callbackUrl ? CALLBACK_SECRET : "",
    ...overrides,
  };
}

/** The edge in the chosen runtime ("workerd" unless E2E_EDGE_RUNTIME says "wrangler"). */
export function edgeStarter(runtime = process.env.E2E_EDGE_RUNTIME || "workerd") {
  const start = { wrangler: startEdge, workerd: startEdgeWorkerd }[runtime];
  if (!start) throw new Error(`unknown edge runtime ${JSON.stringify(runtime)} (workerd or wrangler)`);
  return start;
}

/**
 * Temporal dev server + token issuer + the edge, in workerd through Miniflare
 * (`runtime: "workerd"`, the default unless E2E_EDGE_RUNTIME says otherwise) or in
 * wrangler dev (`runtime: "wrangler"`), with completion callbacks to the edge on
 * (`callbacks: false` turns them off). `startWorker`, if given, is called with
 * `{ temporal, edgeUrl, webhookUrl, webhookSecret }` and must return `{ stop() }`.
 */
export async function startStack({
  edgeOverrides = {},
  startWorker,
  runtime,
  callbacks = true,
  transport = process.env.E2E_TRANSPORT || "temporal_http",
} = {}) {
  if (!["temporal_http", "gateway"].includes(transport)) throw new Error(`unknown transport ${JSON.stringify(transport)} (temporal_http or gateway)`);
  const start = edgeStarter(runtime);
  const stops = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  };
  try {
    const temporal = await startTemporal();
    stops.push(temporal.stop);
    const issuer = await startIssuer();
    stops.push(issuer.stop);
    let gateway = null;
    if (transport === "gateway") {
      gateway = await startGateway(temporal);
      stops.push(gateway.stop);
    }
    const port = await freePort();
    const callbackUrl = callbacks ? `http://127.0.0.1:${port}/v1/hooks/temporal-callback` : "";
    const edge = await start(edgeVars({ temporal, issuer, callbackUrl, overrides: { ...gateway?.edgeVars, ...edgeOverrides } }), port);
    stops.push(edge.stop);
    let worker = null;
    if (startWorker) {
      worker = await startWorker({ temporal, edgeUrl: edge.url, webhookUrl: `${edge.url}/v1/hooks/temporal`, webhookSecret: WEBHOOK_SECRET });
      stops.push(() => worker.stop());
    }
    return { temporal, issuer, gateway, edge, worker, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

export const EDGEFLOW_BIN = process.env.EDGEFLOW_BIN || join(REPO_DIR, "target", "debug", "edgeflow");

/**
 * The Rust worker (`edgeflow worker`) against `temporal`, with the demo services
 * (`edgeflow dev services`), a SQLite database and an email outbox in a temp dir,
 * and its completion webhook pointed at the edge. Ready once its /readyz says so.
 * `env` adds or overrides its settings (e.g. `EDGEFLOW__ENCRYPTION__…`).
 */
export async function startWorker({ temporal, webhookUrl, webhookSecret, env: extra = {} }) {
  if (!existsSync(EDGEFLOW_BIN)) throw new Error(`${EDGEFLOW_BIN} is missing: build it (cargo build -p edgeflow) or set EDGEFLOW_BIN`);
  const dir = mkdtempSync(join(tmpdir(), "edgeflow-worker-"));
  const [demoPort, opsPort] = [await freePort(), await freePort()];
  const base = { ...process.env, EDGEFLOW_TEMPORAL_CLI: temporalCli() };
  const demo = launch("demo services", EDGEFLOW_BIN, ["dev", "services", "--port", String(demoPort)], { cwd: REPO_DIR, env: base });
  const demoUrl = `http://127.0.0.1:${demoPort}`;
  const env = {
    ...base,
    EDGEFLOW__TEMPORAL__ADDRESS: `http://${temporal.address}`,
    EDGEFLOW__TEMPORAL__NAMESPACE: temporal.namespace,
    EDGEFLOW__TEMPORAL__GRPC_COMPRESSION: "none",
    EDGEFLOW__OPS__LISTEN: `127.0.0.1:${opsPort}`,
    EDGEFLOW__DATABASE__URL: `sqlite://${dir}/edgeflow.db?mode=rwc`,
    EDGEFLOW__EMAIL__OUTBOX__DIR: join(dir, "outbox"),
    EDGEFLOW__SERVICES__INVENTORY__BASE_URL: `${demoUrl}/inventory/`,
    EDGEFLOW__SERVICES__PAYMENTS__BASE_URL: `${demoUrl}/payments/`,
    EDGEFLOW__SERVICES__SHIPPING__BASE_URL: `${demoUrl}/shipping/`,
    EDGEFLOW__WEBHOOKS__EDGE__URL: webhookUrl,
    EDGEFLOW__WEBHOOKS__EDGE__SECRETS: webhookSecret,
    EDGEFLOW__SHUTDOWN__GRACE_PERIOD_SECS: "2",
    EDGEFLOW__TELEMETRY__LOG_LEVEL: "warn",
    ...extra,
  };
  const worker = launch("worker", EDGEFLOW_BIN, ["worker"], { cwd: REPO_DIR, env });
  const stop = async () => {
    await worker.stop();
    await demo.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(`${demoUrl}/inventory/`, demo, "demo services", 30_000, () => true);
    await waitFor(`http://127.0.0.1:${opsPort}/readyz`, worker, "edgeflow worker", 60_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { output: worker.output, stop };
}

/** The token the edge attaches to a run's completion callback (callback.ts): HMAC-SHA256, base64url. */
export function callbackToken(workflowId, { secret = CALLBACK_SECRET, namespace = "default" } = {}) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  return createHmac("sha256", key).update(`edgeflow-callback:v1\n${namespace}\n${workflowId}`).digest("base64url");
}

/** Signs a completion webhook as the Rust worker does (Standard Webhooks). */
export function signedHook(body, { secret = WEBHOOK_SECRET, id = `msg_${randomUUID()}`, timestamp = Math.floor(Date.now() / 1000) } = {}) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const signature = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  return { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": `v1,${signature}` };
}

/** Minimal direct client of Temporal's HTTP API, for checking what the edge did. */
export function temporalApi(temporal) {
  const base = `${temporal.httpUrl}/api/v1/namespaces/${temporal.namespace}`;
  const req = async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: { Accept: "application/json+no-payload-shorthand", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = new TextDecoder().decode(await res.arrayBuffer());
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const decode = (p) => (p && p.data !== undefined ? JSON.parse(Buffer.from(p.data, "base64").toString("utf8")) : null);
  const encode = (v) => ({ metadata: { encoding: Buffer.from("json/plain").toString("base64") }, data: Buffer.from(JSON.stringify(v)).toString("base64") });
  return {
    decode,
    encode,
    describe: (id) => req("GET", `/workflows/${encodeURIComponent(id)}`),
    history: (id) => req("GET", `/workflows/${encodeURIComponent(id)}/history`),
    terminate: (id, reason = "e2e") => req("POST", `/workflows/${encodeURIComponent(id)}/terminate`, { reason }),
    cancel: (id) => req("POST", `/workflows/${encodeURIComponent(id)}/cancel`, { reason: "e2e", requestId: randomUUID() }),
    list: (query) => req("GET", `/workflows?query=${encodeURIComponent(query)}`),
    start: (id, type, input, taskQueue = "edgeflow", extra = {}) =>
      req("POST", `/workflows/${encodeURIComponent(id)}`, {
        workflowId: id,
        workflowType: { name: type },
        taskQueue: { name: taskQueue },
        input: { payloads: [encode(input)] },
        requestId: randomUUID(),
        ...extra,
      }),
  };
}
