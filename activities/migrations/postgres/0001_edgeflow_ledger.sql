-- The idempotency ledger: one row per side effect (a db write, a sent email), keyed by the
-- workflow id and the step key the workflow chose. `result` is the activity's JSON result.
CREATE TABLE IF NOT EXISTS edgeflow_ledger (
    kind        TEXT        NOT NULL,
    workflow_id TEXT        NOT NULL,
    step        TEXT        NOT NULL,
    result      TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, workflow_id, step)
);

CREATE INDEX IF NOT EXISTS edgeflow_ledger_created_at ON edgeflow_ledger (created_at);
