// Two projects:
// - "workerd": unit tests inside workerd through @cloudflare/vitest-pool-workers, with the
//   Worker's real bindings (KV, Durable Objects) from wrangler.jsonc and test values for its
//   variables. Outbound calls (Temporal, JWKS) go to fakes in test/fakes.ts.
// - "node": tests that need a process next to the edge's code, here the generated-input test
//   that holds the edge's input verdicts equal to the worker's (`edgeflow schema check`).
import { execFileSync } from "node:child_process";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { TEST_VARS } from "./test/vars.ts";

// The edge imports the Rust-exported schemas through a generated module.
execFileSync(process.execPath, ["scripts/bundle-schemas.mjs"], { stdio: "inherit" });

// The Worker's JSON logs (access lines, and error lines the fault tests provoke on
// purpose) are noise here; tests that check logging spy on console. EDGE_TEST_LOGS=1 shows them.
const onConsoleLog = (log: string) => (process.env.EDGE_TEST_LOGS ? undefined : !log.startsWith('{"level":'));

export default defineConfig({
  test: {
    onConsoleLog,
    projects: [
      {
        plugins: [
          cloudflareTest({
            main: "./src/index.ts",
            wrangler: { configPath: "./wrangler.jsonc" },
            // enable_request_signal is in wrangler.jsonc too: an edge activity's AbortSignal follows request.signal.
            miniflare: { bindings: TEST_VARS, compatibilityFlags: ["enable_request_signal"] },
          }),
        ],
        test: { name: "workerd", include: ["test/**/*.test.ts"], exclude: ["test/**/*.node.test.ts"], testTimeout: 20_000 },
      },
      {
        test: { name: "node", include: ["test/**/*.node.test.ts"], environment: "node", testTimeout: 120_000 },
      },
    ],
  },
});
