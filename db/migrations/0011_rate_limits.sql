-- Rate limits shared by every API replica: one counter per (organization, bucket, window).
-- A bucket names what is counted: 'sessions', 'messages', 'messages:<session id>'.
CREATE TABLE rate_limit_windows (
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    bucket        text NOT NULL,
    window_start  timestamptz NOT NULL,
    count         integer NOT NULL CHECK (count >= 0),
    PRIMARY KEY (org_id, bucket, window_start)
);
