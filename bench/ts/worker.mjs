// The TypeScript SDK peer worker for edgeflow's benchmarks: `echo` and `fanout` from the
// prebuilt bundle, activities `echo` and `http.call`, the same slot limits as edgeflow's
// defaults. Settings from the environment, as in bench/python/worker.py. Prints READY once it
// polls; SIGTERM/SIGINT shut it down.
import { NativeConnection, Runtime, Worker, DefaultLogger } from '@temporalio/worker';
import { makeActivities } from './activities.mjs';

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const int = (name) => Number.parseInt(env(name), 10);

Runtime.install({ logger: new DefaultLogger('WARN') });
const here = new URL('.', import.meta.url).pathname;
const services = process.env.BENCH_STUB_URL ? { bench_stub: process.env.BENCH_STUB_URL } : {};
// gzip is every SDK's default; bench/run passes BENCH_GRPC_COMPRESSION=none unless told --grpc-compression gzip.
const connection = await NativeConnection.connect({
  address: env('BENCH_TEMPORAL_ADDRESS'),
  grpcCompression: { codec: process.env.BENCH_GRPC_COMPRESSION === 'none' ? 'none' : 'gzip' },
});
const worker = await Worker.create({
  connection,
  namespace: 'default',
  taskQueue: env('BENCH_TASK_QUEUE'),
  workflowBundle: { codePath: `${here}dist/workflows-bundle.js` },
  activities: makeActivities(services, Number.parseInt(process.env.BENCH_HTTP_TIMEOUT_SECS ?? '30', 10) * 1000),
  maxConcurrentActivityTaskExecutions: int('BENCH_MAX_ACTIVITIES'),
  maxConcurrentWorkflowTaskExecutions: int('BENCH_MAX_WORKFLOW_TASKS'),
  maxConcurrentLocalActivityExecutions: int('BENCH_MAX_LOCAL_ACTIVITIES'),
  maxCachedWorkflows: int('BENCH_MAX_CACHED'),
  workflowTaskPollerBehavior: { type: 'simple-maximum', maximum: int('BENCH_WORKFLOW_POLLERS') },
  activityTaskPollerBehavior: { type: 'simple-maximum', maximum: int('BENCH_ACTIVITY_POLLERS') },
});
const running = worker.run();
console.log('READY');
await running;
await connection.close();
