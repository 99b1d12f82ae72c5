-- Voice sessions whose caller never connected: created, a voice token handed out, and no socket
-- ever attached (no lease, no token use, the flow never started). Nothing else would close them,
-- so the session sweeper ends them once their token has expired (with a margin). The sweep spans
-- organizations: this owner's function answers only what it needs.

-- The sweep's look-up stays cheap however many ended sessions the table holds.
CREATE INDEX sessions_voice_live_created ON sessions (created_at)
    WHERE channel = 'voice' AND status IN ('active', 'waiting');

CREATE FUNCTION aico_voice_sessions_never_connected(older_than_s double precision,
                                                    max_rows integer)
RETURNS TABLE (session_id uuid, org_id uuid, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT s.id, s.org_id, s.created_at
      FROM public.sessions s
     WHERE s.channel = 'voice' AND s.status IN ('active', 'waiting')
       AND s.created_at < now() - make_interval(secs => older_than_s)
       AND NOT coalesce((s.state ->> 'started')::boolean, false)
       AND NOT EXISTS (SELECT 1 FROM public.voice_leases l WHERE l.session_id = s.id)
       AND NOT EXISTS (SELECT 1 FROM public.voice_token_uses u WHERE u.session_id = s.id)
     ORDER BY s.created_at LIMIT max_rows
$$;

REVOKE ALL ON FUNCTION aico_voice_sessions_never_connected(double precision, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aico_voice_sessions_never_connected(double precision, integer)
    TO aico_app;
