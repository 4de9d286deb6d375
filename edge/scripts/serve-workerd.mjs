// Serves the edge Worker in workerd through Miniflare's API, without `wrangler dev`.
// `wrangler dev` puts its own layer in front of the Worker (its ProxyWorker, a Durable Object
// in a second workerd process that holds requests during reloads and reports every request
// to node for the log, and Miniflare's entry worker in front of each workerd); Cloudflare
// has none of that. Here:
//   - the code is the bundle `wrangler deploy` would upload (`wrangler deploy --dry-run
//     --outdir`, which also runs the build command that bundles the schemas);
//   - the bindings are the ones wrangler.jsonc declares (vars, KV, Durable Objects with
//     SQLite), read by wrangler's own `unstable_getMiniflareWorkerOptions`, with variables
//     and secrets from `--env-file` exactly as `wrangler dev --env-file` reads them
//     (without it, `.dev.vars`/`.env` as wrangler dev would);
//   - clients connect to a socket that workerd itself listens on and that leads straight
//     to the Worker's fetch handler (Miniflare's `unsafeDirectSockets`): no node process
//     and no entry worker between the client and the edge Worker.
// Node only starts workerd and relays its stdout/stderr (the Worker's console lines). Whoever
// starts this script must keep reading its output, or send it to a file: workerd writes console
// lines from its one event-loop thread, so once a pipe left unread is full, the Worker stops
// answering every request (e2e/harness.mjs writes to files).
// Usage: node scripts/serve-workerd.mjs --port P [--ip 127.0.0.1] [--env-file F] [--persist-to D] [--entry FILE]
// (without --persist-to, KV and Durable Object state live in memory; --entry bundles FILE instead
// of wrangler.jsonc's `main`, with the same bindings: for test entries such as
// e2e/fixtures/failing-kv-put.ts, never deployed)
// Prints `ready <url>` once the Worker listens on <url>; SIGTERM/SIGINT stop it and workerd.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Log, LogLevel, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const EDGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    ip: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    "env-file": { type: "string" },
    "persist-to": { type: "string" },
    entry: { type: "string" },
  },
});
if (!args.port) {
  console.error("usage: node scripts/serve-workerd.mjs --port P [--ip 127.0.0.1] [--env-file F] [--persist-to D] [--entry FILE]");
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), "edgeflow-workerd-"));
const cleanup = () => rmSync(work, { recursive: true, force: true });
// Miniflare's own exit hook ends the process on SIGINT/SIGTERM and stops workerd; the
// bundle (and in-memory state) go with the process.
process.on("exit", cleanup);

// The deployable bundle. WRANGLER_HIDE_BANNER also skips wrangler's online update check.
const outdir = join(work, "bundle");
const built = spawnSync(
  process.execPath,
  [
    join(EDGE_DIR, "node_modules", "wrangler", "bin", "wrangler.js"),
    "deploy", "--dry-run", "--outdir", outdir,
    ...(args.entry ? [resolve(args.entry)] : []),
  ],
  {
    cwd: EDGE_DIR,
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true", WRANGLER_LOG: "warn", NO_COLOR: "1" },
  },
);
if (built.status !== 0) {
  console.error(`wrangler deploy --dry-run failed (${built.status ?? built.signal})`);
  process.exit(1);
}

const envFile = args["env-file"] ? resolve(args["env-file"]) : undefined;
const { workerOptions } = unstable_getMiniflareWorkerOptions(join(EDGE_DIR, "wrangler.jsonc"), undefined, {
  envFiles: envFile ? [envFile] : undefined,
});
const mf = new Miniflare({
  ...workerOptions,
  name: "edgeflow-edge",
  modules: true,
  // The bundle is named after its entry: index.js for src/index.ts.
  scriptPath: join(outdir, `${basename(args.entry ?? "index.ts").replace(/\.[cm]?[jt]s$/, "")}.js`),
  modulesRoot: outdir,
  // Miniflare's own entry socket (unused by clients) on a free port.
  host: args.ip,
  port: 0,
  unsafeDirectSockets: [{ host: args.ip, port: Number(args.port) }],
  // KV and Durable Object state under --persist-to (as `wrangler dev --persist-to`), else in memory.
  defaultPersistRoot: args["persist-to"] ? resolve(args["persist-to"]) : undefined,
  // No per-request "GET /x 200" line sent back to node over Miniflare's loopback.
  logRequests: false,
  // Placeholder `request.cf`, never fetched from the network.
  cf: false,
  log: new Log(LogLevel.WARN),
});

try {
  const entry = await mf.ready;
  const url = await mf.unsafeGetDirectURL();
  console.log(`ready ${url.origin} (Miniflare's entry worker, not used: ${entry.origin})`);
} catch (e) {
  console.error(e);
  await mf.dispose().catch(() => {});
  process.exit(1);
}
