-- The orders with this id (no rows when there is none; one per caller who used the id).
-- params: order_id
-- mode: read
SELECT order_ref, order_id, customer_email, total_cents, currency, status, created_at
FROM orders
WHERE order_id = $1
ORDER BY created_at
