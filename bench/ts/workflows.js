// The TypeScript SDK peer's workflows: the same steps as edgeflow's `echo` and `fanout`
// (workflows/src/{echo,fanout}.rs), with the same activity options. Bundled ahead of time by
// bundle.mjs, as the SDK recommends for production workers.
import { proxyActivities } from '@temporalio/workflow';

const { echo: echoActivity } = proxyActivities({
  startToCloseTimeout: '30s',
  heartbeatTimeout: '10s',
});
const calls = proxyActivities({ startToCloseTimeout: '30s' });

export async function echo(input) {
  return await echoActivity(input);
}

export async function fanout(input) {
  const outs = await Promise.all(
    [1, 2, 3].map((n) =>
      calls['http.call']({
        step: `fetch-${n}`,
        service: input.service,
        method: 'GET',
        path: input.path,
        query: { part: String(n) },
      }),
    ),
  );
  return await calls.echo({ message: { fetched: outs.map((o) => o.json) }, delay_ms: 0 });
}
