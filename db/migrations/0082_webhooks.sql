-- Event webhooks (issue 14): an organization's endpoints, and a durable outbox of deliveries.
--
-- Deliveries are written by triggers in the SAME transaction that commits the session's events
-- (the executor's step, a session ending), so an event is delivered if and only if it was
-- committed. The outbox worker (flows/webhook_outbox.py) claims due rows across organizations
-- through `aico_claim_webhook_deliveries` and sends them through the egress guard.

CREATE TABLE webhooks (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id             uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    url                text NOT NULL,
    events             text[] NOT NULL,
    -- The signing secret, sealed with AES-GCM like organization secrets (providers/secrets).
    secret_key_id      text NOT NULL,
    secret_nonce       bytea NOT NULL,
    secret_ciphertext  bytea NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_org ON webhooks (org_id);
SELECT aico_enable_org_rls('webhooks');

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    webhook_id       uuid NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    session_id       uuid,
    event_type       text NOT NULL,
    payload          jsonb NOT NULL,
    -- When the event was written (its transaction commits right after): latency counts from here.
    event_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Retries stop this long after `retry_from` (settings.limits.webhook_give_up_after_s);
    -- a redelivery starts a new window.
    retry_from       timestamptz NOT NULL DEFAULT clock_timestamp(),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at     timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, event_at DESC);
SELECT aico_enable_org_rls('webhook_deliveries');

CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    status_code  integer,
    latency_ms   double precision NOT NULL,
    error        text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
SELECT aico_enable_org_rls('webhook_attempts');

-- One outbox row per subscribed webhook; runs in the writer's transaction and organization.
CREATE FUNCTION aico_enqueue_webhook_event(p_org_id uuid, p_session_id uuid, p_type text,
                                           p_data jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    queued integer;
BEGIN
    INSERT INTO webhook_deliveries (org_id, webhook_id, session_id, event_type, payload)
    SELECT w.org_id, w.id, p_session_id, p_type,
           jsonb_build_object(
               'type', p_type,
               'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                    'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'data', p_data)
      FROM webhooks w WHERE w.org_id = p_org_id AND p_type = ANY (w.events);
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued > 0 THEN
        PERFORM pg_notify('aico_webhooks', '');  -- delivered at commit, once per transaction
    END IF;
END $$;

CREATE FUNCTION aico_session_events_to_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    IF NOT ((NEW.direction = 'in' AND NEW.type IN ('session.started', 'user.turn'))
            OR (NEW.direction = 'out' AND NEW.type = 'transfer')) THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE org_id = NEW.org_id) THEN
        RETURN NULL;  -- the common case: no webhooks, one index probe
    END IF;
    SELECT flow_id, channel INTO s FROM sessions WHERE id = NEW.session_id;
    IF NEW.type = 'session.started' THEN
        PERFORM aico_enqueue_webhook_event(NEW.org_id, NEW.session_id, 'session.started',
            jsonb_build_object('session_id', NEW.session_id, 'flow_id', s.flow_id,
                               'channel', s.channel));
    ELSIF NEW.type = 'user.turn' THEN
        PERFORM aico_enqueue_webhook_event(NEW.org_id, NEW.session_id, 'turn.completed',
            jsonb_build_object(
                'session_id', NEW.session_id, 'seq', NEW.seq,
                'user_text', NEW.payload->>'text',
                'agent_text', (SELECT string_agg(a->>'text', '' ORDER BY n)
                                 FROM jsonb_array_elements(NEW.result->'actions')
                                      WITH ORDINALITY AS x(a, n)
                                WHERE a->>'kind' IN ('say', 'say_chunk'))));
    ELSE
        PERFORM aico_enqueue_webhook_event(NEW.org_id, NEW.session_id, 'transfer.requested',
            jsonb_build_object('session_id', NEW.session_id, 'to', NEW.payload->>'to',
                               'mode', NEW.payload->>'mode'));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER session_events_to_webhooks AFTER INSERT ON session_events
    FOR EACH ROW EXECUTE FUNCTION aico_session_events_to_webhooks();

CREATE FUNCTION aico_session_end_to_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooks WHERE org_id = NEW.org_id) THEN
        PERFORM aico_enqueue_webhook_event(NEW.org_id, NEW.id, 'session.ended',
            jsonb_build_object('session_id', NEW.id, 'flow_id', NEW.flow_id,
                               'channel', NEW.channel, 'status', NEW.status));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_end_to_webhooks AFTER UPDATE OF status ON sessions
    FOR EACH ROW WHEN (OLD.status NOT IN ('ended', 'failed')
                       AND NEW.status IN ('ended', 'failed'))
    EXECUTE FUNCTION aico_session_end_to_webhooks();

-- The outbox worker's one cross-organization statement: claim up to p_limit due deliveries
-- (each for p_lease_s, so a worker that dies mid-send leaves them to another) and name their
-- organizations; everything else the worker does runs scoped to one organization.
CREATE FUNCTION aico_claim_webhook_deliveries(p_limit integer, p_lease_s double precision)
RETURNS TABLE (id uuid, org_id uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE public.webhook_deliveries d
       SET next_attempt_at = clock_timestamp() + make_interval(secs => p_lease_s)
     WHERE d.id IN (SELECT q.id FROM public.webhook_deliveries q
                     WHERE q.status = 'pending' AND q.next_attempt_at <= clock_timestamp()
                     ORDER BY q.next_attempt_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
    RETURNING d.id, d.org_id
$$;
REVOKE ALL ON FUNCTION aico_claim_webhook_deliveries(integer, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aico_claim_webhook_deliveries(integer, double precision) TO aico_app;
