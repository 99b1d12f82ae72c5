-- Provider profiles: everything that can carry a secret or reach the network (kind, base URL,
-- deployment, secret names) is chosen by organization admins in named profiles; a flow picks a
-- profile by name and tunes only harmless fields (model among the allowed ones, voice, language,
-- temperature, max tokens within a cap).
--
-- Existing data keeps working:
-- * each organization's provider layer (`provider_configs`, one config per capability) becomes
--   that capability's default profile, named `default`;
-- * each distinct flow-level provider config that names anything but tuning fields (a kind, a
--   base URL, a secret name, ...) in a draft or a published version becomes a profile named
--   `flow-<md5 prefix of the config>`, and the flow entry becomes `{"profile": name, <tuning>}`.
--   Published versions are rewritten too (with their immutability trigger paused for this one
--   statement): the version keeps its meaning, only the format changes.

CREATE TABLE provider_profiles (
    org_id          uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    capability      text NOT NULL CHECK (capability IN ('stt', 'llm', 'tts', 'embeddings')),
    name            text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    config          jsonb NOT NULL,
    allowed_models  text[] NOT NULL DEFAULT '{}',
    max_tokens_cap  integer CHECK (max_tokens_cap > 0),
    -- An admin vouches that this profile's host may be private: the egress guard lets it through.
    internal        boolean NOT NULL DEFAULT false,
    is_default      boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, capability, name)
);
CREATE UNIQUE INDEX provider_profiles_one_default
    ON provider_profiles (org_id, capability) WHERE is_default;

INSERT INTO provider_profiles (org_id, capability, name, config, is_default)
SELECT org_id, capability, 'default', config, true FROM provider_configs;

-- {"llm": {...legacy...}} -> {"llm": {"profile": "flow-…", "model": …}}, creating the profiles.
CREATE FUNCTION aico_0030_flow_providers(org uuid, providers jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    tuning CONSTANT text[] := ARRAY['profile', 'model', 'voice', 'language', 'temperature',
                                    'max_tokens'];
    out jsonb := '{}'::jsonb;
    cap text;
    entry jsonb;
    profile_name text;
BEGIN
    IF providers IS NULL OR jsonb_typeof(providers) <> 'object' THEN
        RETURN providers;
    END IF;
    FOR cap, entry IN SELECT key, value FROM jsonb_each(providers) LOOP
        IF jsonb_typeof(entry) = 'object' AND cap IN ('stt', 'llm', 'tts', 'embeddings')
           AND EXISTS (SELECT 1 FROM jsonb_object_keys(entry) k WHERE k <> ALL (tuning)) THEN
            profile_name := 'flow-' || left(md5(entry::text), 10);
            INSERT INTO provider_profiles (org_id, capability, name, config)
            VALUES (org, cap, profile_name, entry - 'profile')
            ON CONFLICT DO NOTHING;
            entry := jsonb_build_object('profile', profile_name) || COALESCE(
                (SELECT jsonb_object_agg(key, value) FROM jsonb_each(entry)
                 WHERE key = ANY (tuning) AND key <> 'profile'), '{}'::jsonb);
        END IF;
        out := out || jsonb_build_object(cap, entry);
    END LOOP;
    RETURN out;
END $$;

UPDATE flows SET draft = jsonb_set(draft, '{providers}',
                                   aico_0030_flow_providers(org_id, draft->'providers'))
WHERE jsonb_typeof(draft->'providers') = 'object';

ALTER TABLE flow_versions DISABLE TRIGGER flow_versions_no_update;
UPDATE flow_versions SET document = jsonb_set(document, '{providers}',
                                              aico_0030_flow_providers(org_id, document->'providers'))
WHERE jsonb_typeof(document->'providers') = 'object'
  AND document->'providers' IS DISTINCT FROM aico_0030_flow_providers(org_id, document->'providers');
ALTER TABLE flow_versions ENABLE TRIGGER flow_versions_no_update;

DROP FUNCTION aico_0030_flow_providers(uuid, jsonb);
