-- One order by id (no rows when it does not exist).
-- params: order_id
-- mode: read
SELECT order_id, customer_email, total_cents, currency, status, created_at
FROM orders
WHERE order_id = $1
