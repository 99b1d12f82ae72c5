-- A WhatsApp message whose application fails (a fault, not a flow's typed error) is retried with
-- backoff and, after a few attempts, recorded as failed: it must not hold up the user's later
-- messages for ever.

ALTER TABLE whatsapp_inbox
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();

CREATE OR REPLACE FUNCTION aico_claim_whatsapp_inbox() RETURNS TABLE (id bigint, org_id uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT i.id, i.org_id FROM public.whatsapp_inbox i
     WHERE i.processed_at IS NULL AND i.next_attempt_at <= now()
       AND NOT EXISTS (SELECT 1 FROM public.whatsapp_inbox e
                        WHERE e.number_id = i.number_id AND e.wa_user = i.wa_user
                          AND e.processed_at IS NULL AND (e.sent_at, e.id) < (i.sent_at, i.id))
     ORDER BY i.sent_at, i.id
     LIMIT 1
     FOR UPDATE OF i SKIP LOCKED
$$;
