-- turn.completed's `agent_text`: a streamed reply's chunks joined per stream, separate
-- messages joined by a space (as the chat API shows them), not run together.
CREATE OR REPLACE FUNCTION aico_session_events_to_webhooks() RETURNS trigger
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
                'agent_text', (
                    SELECT string_agg(m.text, ' ' ORDER BY m.first_n)
                      FROM (SELECT min(x.n) AS first_n,
                                   btrim(string_agg(x.a->>'text', '' ORDER BY x.n)) AS text
                              FROM jsonb_array_elements(NEW.result->'actions')
                                   WITH ORDINALITY AS x(a, n)
                             WHERE x.a->>'kind' IN ('say', 'say_chunk')
                             GROUP BY COALESCE(x.a->>'stream_id', x.n::text)) m)));
    ELSE
        PERFORM aico_enqueue_webhook_event(NEW.org_id, NEW.session_id, 'transfer.requested',
            jsonb_build_object('session_id', NEW.session_id, 'to', NEW.payload->>'to',
                               'mode', NEW.payload->>'mode'));
    END IF;
    RETURN NULL;
END $$;

-- Housekeeping across organizations, for the outbox worker: idempotency keys past their
-- lifetime, and finished deliveries (with their attempts) older than p_keep_s.
CREATE FUNCTION aico_prune_integrations(p_idempotency_ttl_s double precision,
                                        p_keep_deliveries_s double precision)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    keys integer;
    deliveries integer;
BEGIN
    DELETE FROM public.idempotency_keys
     WHERE created_at < clock_timestamp() - make_interval(secs => p_idempotency_ttl_s);
    GET DIAGNOSTICS keys = ROW_COUNT;
    DELETE FROM public.webhook_deliveries
     WHERE status IN ('delivered', 'failed')
       AND event_at < clock_timestamp() - make_interval(secs => p_keep_deliveries_s);
    GET DIAGNOSTICS deliveries = ROW_COUNT;
    RETURN keys + deliveries;
END $$;
REVOKE ALL ON FUNCTION aico_prune_integrations(double precision, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aico_prune_integrations(double precision, double precision) TO aico_app;
