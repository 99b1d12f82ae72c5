-- Row-level security, a second wall behind the application's own organization checks.
--
-- The API, voice actors and executor log in as `aico_app`: not the tables' owner, no BYPASSRLS.
-- Every table that carries an organization id has FORCE ROW LEVEL SECURITY and the policy
-- `org_isolation`: a row is visible and writable only inside a transaction that set
-- `aico.org_id` to its organization (db/pool.py: org_transaction, session_transaction).
-- Paths that hold only an unguessable id (a session id, a token hash, a flow version id) learn
-- the organization through the narrow SECURITY DEFINER functions below, then set it.
-- A new organization table: `SELECT aico_enable_org_rls('the_table');` in its migration.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aico_app') THEN
        BEGIN
            CREATE ROLE aico_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'the application role aico_app does not exist and % may not create it',
                current_user
                USING HINT = 'as an administrator: CREATE ROLE aico_app LOGIN PASSWORD ''…'';'
                             ' then set AICO_DATABASE_APP_URL';
        -- Another database of the same server created it a moment ago: roles are server-wide.
        WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aico_app'
                AND (rolsuper OR rolbypassrls)) THEN
        RAISE EXCEPTION 'aico_app must not be a superuser nor have BYPASSRLS';
    END IF;
    IF pg_has_role('aico_app', current_user, 'MEMBER') THEN
        RAISE EXCEPTION 'aico_app must not be a member of the owner role %', current_user;
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO aico_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO aico_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO aico_app;
REVOKE ALL ON schema_migrations FROM aico_app;
-- Tables that later migrations create are the application's too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO aico_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO aico_app;

-- FORCE applies the policies to the owner too; the owner keeps every row through a policy of its
-- own (`owner_all`), which is what migrations and the SECURITY DEFINER lookups run under when the
-- owner is not a superuser (managed servers). The application role is never the owner.
CREATE FUNCTION aico_enable_org_rls(tbl regclass, org_column name DEFAULT 'org_id')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('DROP POLICY IF EXISTS org_isolation ON %s', tbl);
    EXECUTE format(
        'CREATE POLICY org_isolation ON %s'
        ' USING (%I = NULLIF(current_setting(''aico.org_id'', true), '''')::uuid)'
        ' WITH CHECK (%I = NULLIF(current_setting(''aico.org_id'', true), '''')::uuid)',
        tbl, org_column, org_column);
    EXECUTE format('DROP POLICY IF EXISTS owner_all ON %s', tbl);
    EXECUTE format('CREATE POLICY owner_all ON %s TO CURRENT_USER USING (true) WITH CHECK (true)',
                   tbl);
END $$;
REVOKE ALL ON FUNCTION aico_enable_org_rls(regclass, name) FROM PUBLIC;

SELECT aico_enable_org_rls('organizations', 'id');
SELECT aico_enable_org_rls(t) FROM unnest(ARRAY[
    'members', 'api_clients', 'flows', 'flow_versions', 'sessions', 'session_events',
    'transcript_turns', 'provider_configs', 'secrets'
]::regclass[]) AS t;

-- The narrow lookups: each answers one organization id for one exact key, nothing else.
CREATE FUNCTION aico_session_org(session_id uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id FROM public.sessions WHERE id = session_id
$$;

CREATE FUNCTION aico_flow_version_org(version_id uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id FROM public.flow_versions WHERE id = version_id
$$;

CREATE FUNCTION aico_api_client_org(hash text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id FROM public.api_clients WHERE token_hash = hash AND revoked_at IS NULL
$$;

CREATE FUNCTION aico_org_by_slug(org_slug text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT id FROM public.organizations WHERE slug = org_slug
$$;

CREATE FUNCTION aico_org_by_external_id(external text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT id FROM public.organizations WHERE external_id = external
$$;

REVOKE ALL ON FUNCTION aico_session_org(uuid), aico_flow_version_org(uuid),
    aico_api_client_org(text), aico_org_by_slug(text), aico_org_by_external_id(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aico_session_org(uuid), aico_flow_version_org(uuid),
    aico_api_client_org(text), aico_org_by_slug(text), aico_org_by_external_id(text) TO aico_app;
