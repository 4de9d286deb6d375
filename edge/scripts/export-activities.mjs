// Writes the edge's activity manifest (scripts/activity-manifest.mjs) into ../schemas (or
// EDGEFLOW_SCHEMAS_DIR): schemas/edge-activities/*.schema.json, stale ones removed, and the
// `edge_activities` list of manifest.json. The worker's build reads the committed result to
// register one `edge.<name>` activity type per entry. Run after changing src/activities/:
// `npm run activities`.
import { build } from "esbuild";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { FOLDER, renderActivityManifest } from "./activity-manifest.mjs";

const edgeDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const schemasDir = resolve(process.env.EDGEFLOW_SCHEMAS_DIR ?? join(edgeDir, "..", "schemas"));

// The definitions are TypeScript: bundled to one ES module (types stripped) and imported.
const work = mkdtempSync(join(tmpdir(), "edgeflow-activities-"));
try {
  const outfile = join(work, "activities.mjs");
  await build({ entryPoints: [join(edgeDir, "src/activities/index.ts")], bundle: true, format: "esm", platform: "neutral", outfile, logLevel: "warning" });
  const { EDGE_ACTIVITIES } = await import(pathToFileURL(outfile).href);
  const files = renderActivityManifest(EDGE_ACTIVITIES, readFileSync(join(schemasDir, "manifest.json"), "utf8"));
  mkdirSync(join(schemasDir, FOLDER), { recursive: true });
  for (const name of readdirSync(join(schemasDir, FOLDER))) {
    if (!(`${FOLDER}/${name}` in files)) rmSync(join(schemasDir, FOLDER, name));
  }
  for (const [path, text] of Object.entries(files)) {
    const target = join(schemasDir, path);
    if (!existsSync(target) || readFileSync(target, "utf8") !== text) writeFileSync(target, text);
  }
  console.log(`export-activities: ${EDGE_ACTIVITIES.length} edge activities written to ${schemasDir}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
