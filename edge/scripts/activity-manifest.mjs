// What the edge's activity manifest is, rendered from the activity definitions
// (src/activities/index.ts, the one source of truth): for each activity its input and output
// schema as schemas/edge-activities/<name>.{input,output}.schema.json, and the manifest's
// `edge_activities` list. scripts/export-activities.mjs writes it; test/activities.node.test.ts
// fails when the committed files differ from it.

export const FOLDER = "edge-activities";

/** JSON as the worker's `edgeflow schema export` writes it (serde_json: keys sorted, 2 spaces, a final newline). */
export function pretty(value) {
  const sorted = (v) =>
    Array.isArray(v)
      ? v.map(sorted)
      : v && typeof v === "object"
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])]))
        : v;
  return JSON.stringify(sorted(value), null, 2) + "\n";
}

/**
 * Every file of the export, by path relative to the schemas folder: the schema files and
 * manifest.json with `edge_activities` set (everything else in it kept as the worker wrote it).
 */
export function renderActivityManifest(activities, manifestText) {
  const files = {};
  const entries = activities.map((a) => {
    const input = `${FOLDER}/${a.name}.input.schema.json`;
    const output = `${FOLDER}/${a.name}.output.schema.json`;
    files[input] = pretty(a.input);
    files[output] = pretty(a.output);
    return { name: a.name, input, output, ...(a.maxAttemptSecs ? { max_attempt_secs: a.maxAttemptSecs } : {}) };
  });
  const manifest = JSON.parse(manifestText);
  manifest.edge_activities = entries;
  files["manifest.json"] = pretty(manifest);
  return files;
}
