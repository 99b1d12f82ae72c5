-- Row-level security for the tables added beside 0050 (egress allow-lists, provider profiles,
-- rate-limit windows, voice leases and token uses, stored live events, http call intents), and
-- the owner's narrow functions for the sweeper's work across organizations.

-- Every organization table that exists now and is not yet guarded (whichever of the tables above
-- this database has: they arrive by migrations numbered below this one).
SELECT aico_enable_org_rls(format('%I', c.relname)::regclass)
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND NOT c.relforcerowsecurity
   AND EXISTS (SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped);

-- http_calls has no org_id: a row belongs to the organization of its session, and the policy's
-- look at `sessions` is itself filtered by that table's policy.
ALTER TABLE http_calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE http_calls FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON http_calls
    USING (EXISTS (SELECT 1 FROM sessions s WHERE s.id = http_calls.session_id))
    WITH CHECK (EXISTS (SELECT 1 FROM sessions s WHERE s.id = http_calls.session_id));
CREATE POLICY owner_all ON http_calls TO CURRENT_USER USING (true) WITH CHECK (true);

-- The session sweeper's reads and prunes span organizations: these answer only what it needs.
CREATE FUNCTION aico_expired_voice_leases(max_rows integer)
RETURNS TABLE (session_id uuid, org_id uuid, holder text, expires_at timestamptz, status text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT l.session_id, l.org_id, l.holder, l.expires_at, s.status
      FROM public.voice_leases l JOIN public.sessions s ON s.id = l.session_id
     WHERE l.expires_at <= now() ORDER BY l.expires_at LIMIT max_rows
$$;

CREATE FUNCTION aico_delete_expired_voice_token_uses() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (DELETE FROM public.voice_token_uses WHERE expires_at < now() RETURNING 1)
    SELECT count(*) FROM gone
$$;

CREATE FUNCTION aico_delete_live_events_older_than(seconds double precision) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (DELETE FROM public.live_events
                   WHERE created_at < now() - make_interval(secs => seconds) RETURNING 1)
    SELECT count(*) FROM gone
$$;

REVOKE ALL ON FUNCTION aico_expired_voice_leases(integer), aico_delete_expired_voice_token_uses(),
    aico_delete_live_events_older_than(double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aico_expired_voice_leases(integer),
    aico_delete_expired_voice_token_uses(), aico_delete_live_events_older_than(double precision)
    TO aico_app;
