// Input rules a JSON Schema cannot say, one per workflow that has one. Each is
// the edge's copy of a rule the worker checks after the schema (for `order`:
// `OrderInput::accept` in workflows/src/order/contract.rs); it runs only on
// input the schema accepted. test/rules.property.test.ts compares the edge's
// verdicts with `edgeflow schema check` on generated inputs, which keeps the
// copies honest.
import { fieldError, type FieldError } from "./problem";

/** Problems with an input the schema accepted; empty when the rule holds. */
export type Rule = (input: any) => FieldError[];

const U64_MAX = 2n ** 64n - 1n;

/** `amount_cents` equals Σ quantity × unit_price_cents, computed as the worker does (u64, overflow refused). */
function orderTotal(input: { items: { quantity: number; unit_price_cents: number }[]; amount_cents: number }): FieldError[] {
  let total = 0n;
  for (const item of input.items) {
    total += BigInt(item.quantity) * BigInt(item.unit_price_cents);
    if (total > U64_MAX) return [fieldError(["items"], "the lines' total overflows")];
  }
  if (total !== BigInt(input.amount_cents)) return [fieldError(["amount_cents"], `${input.amount_cents} does not equal the lines' total ${total}`)];
  return [];
}

export const RULES: Record<string, Rule> = {
  order: orderTotal,
};
