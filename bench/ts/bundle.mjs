// Bundles workflows.js into dist/workflows-bundle.js once, ahead of the runs, so the measured
// worker loads prebuilt code as a production TypeScript worker does (no webpack at start-up).
import { mkdir, writeFile } from 'node:fs/promises';
import { bundleWorkflowCode } from '@temporalio/worker';

const here = new URL('.', import.meta.url).pathname;
const { code } = await bundleWorkflowCode({ workflowsPath: `${here}workflows.js`, logger: undefined });
await mkdir(`${here}dist`, { recursive: true });
await writeFile(`${here}dist/workflows-bundle.js`, code);
console.log(`bundled ${code.length} bytes into dist/workflows-bundle.js`);
