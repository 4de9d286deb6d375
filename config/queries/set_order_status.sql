-- Move an order to a new status (e.g. paid, shipped, cancelled); rows_affected is 0 if the id
-- does not exist.
-- params: order_id, status
-- mode: write
UPDATE orders SET status = $2 WHERE order_id = $1
RETURNING order_id, status
