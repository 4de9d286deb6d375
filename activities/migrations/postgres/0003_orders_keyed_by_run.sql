-- Orders keyed by their run (`order_ref`: the workflow id), no longer by `order_id` alone: the edge
-- scopes runs to the caller, so two customers may each have an order `ord-1`. Rows recorded before
-- keep their `order_id` as their reference, which is what their runs still use.
ALTER TABLE orders DROP CONSTRAINT orders_pkey;
ALTER TABLE orders ADD COLUMN order_ref TEXT;
UPDATE orders SET order_ref = order_id;
ALTER TABLE orders ALTER COLUMN order_ref SET NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (order_ref);
CREATE INDEX orders_order_id ON orders (order_id);
