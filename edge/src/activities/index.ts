// The edge activities this Worker runs, by name, with their schemas compiled once per
// isolate. The list is the source of truth: scripts/export-activities.mjs writes it out as
// schemas/edge-activities/ and the manifest's `edge_activities`, which the worker registers
// from (test/activities.node.test.ts fails when they differ).
import { Validator } from "@cfworker/json-schema";
import type { EdgeActivity } from "./activity";
import { d1Execute } from "./d1";
import { kvDelete, kvPut } from "./kv";

export const EDGE_ACTIVITIES: EdgeActivity[] = [kvPut, kvDelete, d1Execute];

/** Names: lowercase dotted words (`kv.put`), as Temporal's type `edge.<name>` and a URL path segment. */
export const ACTIVITY_NAME = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

export interface Registered {
  activity: EdgeActivity;
  input: Validator;
  output: Validator;
}

export class ActivityRegistry {
  private readonly byName = new Map<string, Registered>();

  constructor(list: EdgeActivity[]) {
    for (const activity of list) {
      if (!ACTIVITY_NAME.test(activity.name)) throw new Error(`edge activity name ${JSON.stringify(activity.name)} is not lowercase dotted words`);
      if (this.byName.has(activity.name)) throw new Error(`edge activity ${activity.name} is declared twice`);
      this.byName.set(activity.name, {
        activity,
        input: new Validator(activity.input, "2020-12", false),
        output: new Validator(activity.output, "2020-12", false),
      });
    }
  }

  get(name: string): Registered | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
