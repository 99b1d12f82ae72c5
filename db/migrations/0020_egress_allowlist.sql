-- Per-organization egress allow-list: private hosts and networks that flows' http nodes and
-- provider URLs may reach (everything not global is refused otherwise; see aico/egress.py).
CREATE TABLE egress_allowlists (
    org_id      uuid PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    hosts       text[] NOT NULL DEFAULT '{}' CHECK (cardinality(hosts) <= 64),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Organizations that set the old `allow_private_http: true` keep reaching the private ranges
-- they could reach (loopback, RFC 1918, unique-local), but not link-local metadata addresses.
INSERT INTO egress_allowlists (org_id, hosts)
SELECT id, ARRAY['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '::1/128',
                 'fc00::/7']
FROM organizations
WHERE settings->>'allow_private_http' = 'true'
ON CONFLICT (org_id) DO NOTHING;
UPDATE organizations SET settings = settings - 'allow_private_http'
WHERE settings ? 'allow_private_http';
