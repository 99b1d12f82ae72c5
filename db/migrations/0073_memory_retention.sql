-- Memory retention per organization (`organizations.settings.memory_retention_days`): the
-- sweeper of every API replica deletes remembered turns and facts older than that. The sweep
-- spans organizations, so it runs as this narrow function of the owner.
CREATE FUNCTION aico_prune_expired_memory() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH kept AS (
        SELECT id, make_interval(days => (settings->>'memory_retention_days')::int) AS keep
          FROM public.organizations
         WHERE settings->>'memory_retention_days' ~ '^[0-9]{1,5}$'
    ), episodes AS (
        DELETE FROM public.memory_episodes e USING kept
         WHERE e.org_id = kept.id AND e.created_at < now() - kept.keep RETURNING 1
    ), facts AS (
        DELETE FROM public.memory_facts f USING kept
         WHERE f.org_id = kept.id AND f.created_at < now() - kept.keep RETURNING 1
    )
    SELECT (SELECT count(*) FROM episodes) + (SELECT count(*) FROM facts)
$$;
REVOKE ALL ON FUNCTION aico_prune_expired_memory() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aico_prune_expired_memory() TO aico_app;
