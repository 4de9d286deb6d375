-- Move an order to a new status (e.g. paid, shipped, cancelled); rows_affected is 0 if the order
-- does not exist. Orders are keyed by their run's reference (`order_ref`).
-- params: order_ref, status
-- mode: write
UPDATE orders SET status = $2 WHERE order_ref = $1
RETURNING order_id, status
