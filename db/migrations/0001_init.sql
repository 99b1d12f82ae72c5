-- Organizations, identity, flows, sessions and their append-only event log.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL,
    -- The identity provider's organization id (Logto `organization_id` claim), if any.
    external_id text UNIQUE,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    subject     text NOT NULL,
    role        text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, subject)
);

-- Machine and dev credentials: only a SHA-256 of the token is stored.
CREATE TABLE api_clients (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        text NOT NULL,
    token_hash  text NOT NULL UNIQUE,
    role        text NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'member')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_clients_org ON api_clients (org_id);

CREATE TABLE flows (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    draft           jsonb NOT NULL,
    draft_revision  integer NOT NULL DEFAULT 1,
    latest_version  integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX flows_org ON flows (org_id, created_at DESC) WHERE deleted_at IS NULL;

CREATE TABLE flow_versions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    flow_id     uuid NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    version     integer NOT NULL,
    document    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (flow_id, version)
);

-- A published version is immutable: the database refuses any UPDATE of it.
CREATE FUNCTION flow_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'flow_versions rows are immutable';
END $$;
CREATE TRIGGER flow_versions_no_update BEFORE UPDATE ON flow_versions
    FOR EACH ROW EXECUTE FUNCTION flow_versions_immutable();

CREATE TABLE sessions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id              uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    flow_id             uuid NOT NULL REFERENCES flows(id),
    flow_version_id     uuid NOT NULL REFERENCES flow_versions(id),
    parent_session_id   uuid REFERENCES sessions(id),
    channel             text NOT NULL CHECK (channel IN ('chat', 'voice')),
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'waiting', 'ended', 'failed')),
    state               jsonb NOT NULL DEFAULT '{}'::jsonb,
    variables           jsonb NOT NULL DEFAULT '{}'::jsonb,
    user_id             text,
    user_cluster        text,
    providers           jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics             jsonb NOT NULL DEFAULT '{}'::jsonb,
    version             integer NOT NULL DEFAULT 0,
    event_seq           integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    ended_at            timestamptz
);
CREATE INDEX sessions_org_created ON sessions (org_id, created_at DESC);
CREATE INDEX sessions_org_flow ON sessions (org_id, flow_id, created_at DESC);
CREATE INDEX sessions_parent ON sessions (parent_session_id) WHERE parent_session_id IS NOT NULL;

-- Append-only: every inbound event consumed and every event produced, in order.
CREATE TABLE session_events (
    id          bigserial PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    session_id  uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL,
    direction   text NOT NULL CHECK (direction IN ('in', 'out')),
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    result      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, event_id),
    UNIQUE (session_id, seq)
);

CREATE FUNCTION session_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'session_events is append-only';
END $$;
CREATE TRIGGER session_events_no_update BEFORE UPDATE ON session_events
    FOR EACH ROW EXECUTE FUNCTION session_events_append_only();

CREATE TABLE transcript_turns (
    id          bigserial PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    session_id  uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    role        text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    text        text NOT NULL,
    metrics     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transcript_turns_session ON transcript_turns (session_id, seq);

CREATE TABLE provider_configs (
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    capability  text NOT NULL CHECK (capability IN ('stt', 'llm', 'tts', 'embeddings')),
    config      jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, capability)
);

-- Ciphertext only (AES-GCM); the key lives outside the database, named by key_id.
CREATE TABLE secrets (
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$'),
    key_id      text NOT NULL,
    nonce       bytea NOT NULL,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, name)
);
