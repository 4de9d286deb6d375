-- Record a new order under its run's reference (the workflow id, scoped to the caller by the edge).
-- A second order with the same reference is a constraint violation (not retried).
-- params: order_ref, order_id, customer_email, total_cents, currency
-- mode: write
INSERT INTO orders (order_ref, order_id, customer_email, total_cents, currency)
VALUES ($1, $2, $3, $4, $5)
RETURNING order_id, status
