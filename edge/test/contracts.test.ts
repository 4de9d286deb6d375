// What the worker sends the edge, held to the Rust-exported schemas: the completion
// event's body and the details of an InvalidInput failure. scripts/bundle-schemas.mjs
// generates src/generated/contracts.ts from the schemas; the type assertions below are
// checked by `tsc` (npm test runs it before the tests), so a change on either side alone
// fails the build. The rest checks at run time what types cannot: names and sample values.
import { Validator } from "@cfworker/json-schema";
import { describe, expect, expectTypeOf, it } from "vitest";
import { manifest, schemaFiles } from "../src/generated/catalog";
import type * as Exported from "../src/generated/contracts";
import { INVALID_INPUT, type InvalidInputDetails } from "../src/routes";
import type { CompletionBody } from "../src/webhook";
import { completion } from "./helpers";

expectTypeOf<CompletionBody>().toEqualTypeOf<Exported.CompletionEvent>();
expectTypeOf<InvalidInputDetails>().toEqualTypeOf<Exported.InvalidInputDetails>();

/** The exported schema of `file`, compiled as the edge compiles input schemas. */
function validator(file: string): Validator {
  return new Validator(schemaFiles[file] as object, "2020-12", false);
}

describe("contracts with the worker", () => {
  it("the manifest names the completion event's types and the InvalidInput failure", () => {
    const event = manifest.events.find((e) => e.name === "workflow.completion");
    expect(event?.types).toEqual(["workflow.completed", "workflow.failed"] satisfies CompletionBody["type"][]);
    expect(manifest.failures.map((f) => f.type)).toContain(INVALID_INPUT);
  });

  it("the completion events the tests send are valid against the exported schema", () => {
    const schema = validator(manifest.events[0].body);
    for (const body of [completion("order-1", "run-1"), completion("order-1", "run-1", null, "workflow.failed")]) {
      expect(schema.validate(body).errors).toEqual([]);
    }
    expect(schema.validate({ ...completion("order-1", "run-1"), type: "workflow.started" }).valid).toBe(false);
  });

  it("InvalidInput details as the edge reads them are valid against the exported schema", () => {
    const schema = validator(manifest.failures[0].details);
    const details: InvalidInputDetails = { errors: [{ path: "$.approver", message: "is required" }] };
    expect(schema.validate(details).errors).toEqual([]);
    expect(schema.validate({ errors: [] }).valid).toBe(false);
  });
});
