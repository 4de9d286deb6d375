// Worker entry point: the fetch handler and the Durable Object classes that
// wrangler.jsonc binds. Everything else lives in app.ts and its modules.
import { handle } from "./app";

export { RunWaiter } from "./waiter";
export { ActivityTokens } from "./activities/tokens";

export default {
  fetch(request, env, ctx) {
    return handle(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
