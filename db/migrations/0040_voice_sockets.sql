-- One live socket per voice session (a lease renewed while the call lives), single-use voice
-- tokens, and live events too big for a NOTIFY payload (8,000 bytes), stored and referenced.

CREATE TABLE voice_leases (
    session_id   uuid PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    -- The API replica connection that holds the caller's socket (host:pid:uuid).
    holder       text NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    renewed_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX voice_leases_org ON voice_leases (org_id, expires_at);
CREATE INDEX voice_leases_expires ON voice_leases (expires_at);

CREATE TABLE voice_token_uses (
    -- sha256 of the token: a token attaches once.
    token_id     text PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    session_id   uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    used_at      timestamptz NOT NULL DEFAULT now(),
    -- After the token's own expiry the row proves nothing more and may be pruned.
    expires_at   timestamptz NOT NULL
);
CREATE INDEX voice_token_uses_expires ON voice_token_uses (expires_at);

CREATE TABLE live_events (
    id           bigserial PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    session_id   uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX live_events_created ON live_events (created_at);
