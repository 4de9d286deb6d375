// Unit tests run inside workerd through @cloudflare/vitest-pool-workers, with the
// Worker's real bindings (KV, Durable Objects) from wrangler.jsonc and test values
// for its variables. Outbound calls (Temporal, JWKS) go to fakes in test/fakes.ts.
import { execFileSync } from "node:child_process";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { TEST_VARS } from "./test/vars.ts";

// The edge imports the Rust-exported schemas through a generated module.
execFileSync(process.execPath, ["scripts/bundle-schemas.mjs"], { stdio: "inherit" });

export default defineConfig({
  plugins: [
    cloudflareTest({
      main: "./src/index.ts",
      wrangler: { configPath: "./wrangler.jsonc" },
      miniflare: { bindings: TEST_VARS },
    }),
  ],
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    // The Worker's JSON logs (access lines, and error lines the fault tests provoke on
    // purpose) are noise here; tests that check logging spy on console. EDGE_TEST_LOGS=1 shows them.
    onConsoleLog: (log) => (process.env.EDGE_TEST_LOGS ? undefined : !log.startsWith('{"level":')),
  },
});
