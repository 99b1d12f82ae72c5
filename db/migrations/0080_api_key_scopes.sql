-- API keys for machines: scopes narrow what a key may do within its role (NULL: everything the
-- role allows), and a key may expire. Revocation stays `revoked_at` (0001).
ALTER TABLE api_clients ADD COLUMN scopes text[];
ALTER TABLE api_clients ADD COLUMN expires_at timestamptz;
