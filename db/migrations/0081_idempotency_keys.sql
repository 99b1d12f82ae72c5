-- Idempotency-Key on the HTTP triggers (serve_apps/idempotency.py): the first request with a
-- key claims this row (the primary key makes concurrent retries wait on the first and then
-- find it), runs, and stores its response; a retry within the lifetime gets that response.
CREATE TABLE idempotency_keys (
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status_code   integer NOT NULL DEFAULT 0,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
SELECT aico_enable_org_rls('idempotency_keys');
