-- Orders, the flagship scenario's table (config/queries/insert_order.sql, get_order.sql).
CREATE TABLE IF NOT EXISTS orders (
    order_id       TEXT        PRIMARY KEY,
    customer_email TEXT        NOT NULL,
    total_cents    BIGINT      NOT NULL CHECK (total_cents >= 0),
    currency       TEXT        NOT NULL DEFAULT 'USD',
    status         TEXT        NOT NULL DEFAULT 'pending',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
