-- Phone calls (issue 11): an organization's phone numbers, each answered by a flow through one
-- carrier (LiveKit SIP, Twilio or Telnyx media streams); every call, inbound or outbound, with
-- the carrier's own call id (a redelivered webhook names it again and starts nothing); what
-- happened on a call that a person may need to see (a refused transfer, a carrier status);
-- and the organization's dialing policy, the toll-fraud guard of outbound calls and transfers.

ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_channel_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_channel_check
    CHECK (channel IN ('chat', 'voice', 'whatsapp', 'phone'));

CREATE TABLE phone_numbers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    -- E.164; a call names the number it reached, so a number belongs to one organization.
    number      text NOT NULL UNIQUE CHECK (number ~ '^\+[1-9][0-9]{5,14}$'),
    flow_id     uuid NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    provider    text NOT NULL CHECK (provider IN ('livekit', 'twilio', 'telnyx')),
    -- Carrier settings; a key ending in `_secret` names an organization secret, never a value.
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX phone_numbers_org ON phone_numbers (org_id, created_at);

CREATE TABLE phone_calls (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    number_id    uuid REFERENCES phone_numbers(id) ON DELETE SET NULL,
    session_id   uuid REFERENCES sessions(id) ON DELETE SET NULL,
    provider     text NOT NULL,
    direction    text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    -- The carrier's id of the call (Twilio's CallSid); NULL until an outbound call is placed.
    call_ref     text,
    from_number  text NOT NULL,
    to_number    text NOT NULL,
    status       text NOT NULL DEFAULT 'queued',
    answered_at  timestamptz,
    ended_at     timestamptz,
    -- Why the call could not go on (missing secrets, a carrier error), for the dashboard.
    failure      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, call_ref)
);
CREATE INDEX phone_calls_org ON phone_calls (org_id, created_at DESC);
CREATE INDEX phone_calls_session ON phone_calls (session_id);
CREATE INDEX phone_calls_live_outbound ON phone_calls (org_id)
    WHERE direction = 'outbound' AND ended_at IS NULL;

CREATE TABLE phone_call_events (
    id          bigserial PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    call_id     uuid NOT NULL REFERENCES phone_calls(id) ON DELETE CASCADE,
    kind        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX phone_call_events_call ON phone_call_events (call_id, id);

-- No row: nothing may be dialled (the guard refuses, naming this policy).
CREATE TABLE phone_dialing_policies (
    org_id                 uuid PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    allowed_country_codes  text[] NOT NULL DEFAULT '{}',
    allowed_prefixes       text[] NOT NULL DEFAULT '{}',
    allow_premium          boolean NOT NULL DEFAULT false,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

SELECT aico_enable_org_rls(t) FROM unnest(ARRAY[
    'phone_numbers', 'phone_calls', 'phone_call_events', 'phone_dialing_policies'
]::regclass[]) AS t;

-- A carrier's webhook names the number it reached: which organization configured it.
CREATE FUNCTION aico_phone_number_org(p_number text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id FROM public.phone_numbers WHERE number = p_number
$$;

-- A carrier's status callback or media stream names its call id: whose call it is.
CREATE FUNCTION aico_phone_call_org(p_provider text, p_call_ref text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id FROM public.phone_calls WHERE provider = p_provider AND call_ref = p_call_ref
$$;

REVOKE ALL ON FUNCTION aico_phone_number_org(text), aico_phone_call_org(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aico_phone_number_org(text), aico_phone_call_org(text, text)
    TO aico_app;
