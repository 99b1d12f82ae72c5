-- The WhatsApp channel: configured numbers, the durable inbox of verified webhook messages,
-- conversations (one open session per organization, WhatsApp user and flow), the outbox of
-- replies with their delivery statuses, and the narrow lookups that webhooks and the worker need
-- across organizations.

ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_channel_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_channel_check
    CHECK (channel IN ('chat', 'voice', 'whatsapp'));

CREATE TABLE whatsapp_numbers (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id               uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    -- Meta's id routes a webhook to exactly one organization: unique across all of them.
    phone_number_id      text NOT NULL UNIQUE,
    display_number       text NOT NULL,
    flow_id              uuid NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    -- SHA-256 of the verification token: the handshake compares hashes, the token is not kept.
    verify_token_hash    text NOT NULL,
    app_secret_secret    text NOT NULL,
    access_token_secret  text NOT NULL,
    -- The last Graph API error that needs a person (an expired token, code 190).
    last_error           jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX whatsapp_numbers_org ON whatsapp_numbers (org_id, created_at);
CREATE INDEX whatsapp_numbers_verify ON whatsapp_numbers (verify_token_hash);

CREATE TABLE whatsapp_inbox (
    id            bigserial PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    number_id     uuid NOT NULL REFERENCES whatsapp_numbers(id) ON DELETE CASCADE,
    wamid         text NOT NULL,
    wa_user       text NOT NULL,
    kind          text NOT NULL,
    sent_at       timestamptz NOT NULL,
    payload       jsonb NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    outcome       text,
    -- Meta redelivers: a message is stored (and so applied) once per number.
    UNIQUE (number_id, wamid)
);
CREATE INDEX whatsapp_inbox_pending ON whatsapp_inbox (number_id, wa_user, sent_at, id)
    WHERE processed_at IS NULL;

CREATE TABLE whatsapp_conversations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    number_id        uuid NOT NULL REFERENCES whatsapp_numbers(id) ON DELETE CASCADE,
    wa_user          text NOT NULL,
    flow_id          uuid NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    session_id       uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    last_message_at  timestamptz NOT NULL,
    -- Meta's 131047: the 24-hour window is closed, only a template may reach the user.
    reengagement_required boolean NOT NULL DEFAULT false,
    closed_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX whatsapp_conversations_open ON whatsapp_conversations (org_id, wa_user, flow_id)
    WHERE closed_at IS NULL;

CREATE TABLE whatsapp_outbox (
    id               bigserial PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    number_id        uuid NOT NULL REFERENCES whatsapp_numbers(id) ON DELETE CASCADE,
    session_id       uuid REFERENCES sessions(id) ON DELETE SET NULL,
    inbox_id         bigint REFERENCES whatsapp_inbox(id) ON DELETE SET NULL,
    part             integer NOT NULL,
    wa_user          text NOT NULL,
    body             jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'delivered', 'read', 'failed')),
    wamid            text,
    error_code       integer,
    error_message    text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    UNIQUE (inbox_id, part)
);
CREATE INDEX whatsapp_outbox_pending ON whatsapp_outbox (next_attempt_at, id)
    WHERE status = 'pending';
CREATE UNIQUE INDEX whatsapp_outbox_wamid ON whatsapp_outbox (number_id, wamid)
    WHERE wamid IS NOT NULL;

-- Every status Meta reported for an outbound message, once each.
CREATE TABLE whatsapp_statuses (
    id          bigserial PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    number_id   uuid NOT NULL REFERENCES whatsapp_numbers(id) ON DELETE CASCADE,
    wamid       text NOT NULL,
    status      text NOT NULL,
    error_code  integer,
    reported_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (wamid, status)
);

SELECT aico_enable_org_rls(t) FROM unnest(ARRAY[
    'whatsapp_numbers', 'whatsapp_inbox', 'whatsapp_conversations', 'whatsapp_outbox',
    'whatsapp_statuses'
]::regclass[]) AS t;

-- A webhook names Meta's phone number id; this answers which organization configured it.
CREATE FUNCTION aico_whatsapp_number_org(phone_number_id text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id FROM public.whatsapp_numbers n WHERE n.phone_number_id = $1
$$;

-- The verification handshake: does any number carry this token (by its hash)? Nothing else.
CREATE FUNCTION aico_whatsapp_verify_token_known(token_hash text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT EXISTS (SELECT 1 FROM public.whatsapp_numbers WHERE verify_token_hash = $1)
$$;

-- The worker's claim across organizations: the earliest pending message of a user whose
-- earlier messages are all processed, locked (SKIP LOCKED) until the caller's transaction
-- ends. A crash before that commit releases the lock and leaves the row pending.
CREATE FUNCTION aico_claim_whatsapp_inbox() RETURNS TABLE (id bigint, org_id uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT i.id, i.org_id FROM public.whatsapp_inbox i
     WHERE i.processed_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM public.whatsapp_inbox e
                        WHERE e.number_id = i.number_id AND e.wa_user = i.wa_user
                          AND e.processed_at IS NULL AND (e.sent_at, e.id) < (i.sent_at, i.id))
     ORDER BY i.sent_at, i.id
     LIMIT 1
     FOR UPDATE OF i SKIP LOCKED
$$;

-- The sender's claim: the next due outbound message, locked until the caller's commit.
CREATE FUNCTION aico_claim_whatsapp_outbox() RETURNS TABLE (id bigint, org_id uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT o.id, o.org_id FROM public.whatsapp_outbox o
     WHERE o.status = 'pending' AND o.next_attempt_at <= now()
       AND NOT EXISTS (SELECT 1 FROM public.whatsapp_outbox e
                        WHERE e.number_id = o.number_id AND e.wa_user = o.wa_user
                          AND e.status = 'pending' AND e.id < o.id)
     ORDER BY o.next_attempt_at, o.id
     LIMIT 1
     FOR UPDATE OF o SKIP LOCKED
$$;

REVOKE ALL ON FUNCTION aico_whatsapp_number_org(text), aico_whatsapp_verify_token_known(text),
    aico_claim_whatsapp_inbox(), aico_claim_whatsapp_outbox() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aico_whatsapp_number_org(text), aico_whatsapp_verify_token_known(text),
    aico_claim_whatsapp_inbox(), aico_claim_whatsapp_outbox() TO aico_app;
