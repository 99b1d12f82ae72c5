-- Persistent user facts: (type, value) pairs the LLM extracted from a user's turns. A newer fact
-- of the same (user, type) supersedes the older one, which is kept with superseded_at (audit).
CREATE TABLE memory_facts (
    id            bigserial PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id       text NOT NULL,
    session_id    uuid REFERENCES sessions(id) ON DELETE CASCADE,
    type          text NOT NULL,
    value         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    superseded_at timestamptz
);
CREATE UNIQUE INDEX memory_facts_current ON memory_facts (org_id, user_id, type)
    WHERE superseded_at IS NULL;
CREATE INDEX memory_facts_session ON memory_facts (session_id);

SELECT aico_enable_org_rls('memory_facts');
