-- Record a new order under its `order_id`: what runs started before orders were keyed by their run
-- still call (new runs call record_order). A second order with the same id is a constraint
-- violation (not retried).
-- params: order_id, customer_email, total_cents, currency
-- mode: write
INSERT INTO orders (order_ref, order_id, customer_email, total_cents, currency)
VALUES ($1, $1, $2, $3, $4)
RETURNING order_id, status
