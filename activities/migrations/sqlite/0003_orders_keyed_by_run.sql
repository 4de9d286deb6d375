-- Orders keyed by their run (`order_ref`: the workflow id), no longer by `order_id` alone: the edge
-- scopes runs to the caller, so two customers may each have an order `ord-1`. Rows recorded before
-- keep their `order_id` as their reference, which is what their runs still use. SQLite cannot
-- change a primary key in place: the table is rebuilt.
CREATE TABLE orders_keyed_by_run (
    order_ref      TEXT    PRIMARY KEY,
    order_id       TEXT    NOT NULL,
    customer_email TEXT    NOT NULL,
    total_cents    INTEGER NOT NULL CHECK (total_cents >= 0),
    currency       TEXT    NOT NULL DEFAULT 'USD',
    status         TEXT    NOT NULL DEFAULT 'pending',
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO orders_keyed_by_run (order_ref, order_id, customer_email, total_cents, currency, status, created_at)
SELECT order_id, order_id, customer_email, total_cents, currency, status, created_at FROM orders;
DROP TABLE orders;
ALTER TABLE orders_keyed_by_run RENAME TO orders;
CREATE INDEX orders_order_id ON orders (order_id);
