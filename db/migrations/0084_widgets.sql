-- The embeddable web widget (issue 14): a public key per widget, the flow it opens and the
-- origins allowed to embed it; each visitor's session is reachable only with the visitor token
-- it was given (stored hashed).
CREATE TABLE widgets (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    public_key       text NOT NULL UNIQUE,
    flow_id          uuid NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    allowed_origins  text[] NOT NULL,
    voice            boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX widgets_org ON widgets (org_id);
SELECT aico_enable_org_rls('widgets');

CREATE TABLE widget_sessions (
    session_id          uuid PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    org_id              uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    widget_id           uuid NOT NULL REFERENCES widgets(id) ON DELETE CASCADE,
    visitor_token_hash  text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
SELECT aico_enable_org_rls('widget_sessions');

-- The public endpoints hold only the widget's public key: its organization, nothing else.
CREATE FUNCTION aico_widget_org(p_key text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id FROM public.widgets WHERE public_key = p_key
$$;
REVOKE ALL ON FUNCTION aico_widget_org(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aico_widget_org(text) TO aico_app;
