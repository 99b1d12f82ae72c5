-- Roles: owner, admin, editor, viewer, for API clients and explicit organization members.
-- Existing API clients keep what they could do: the embedded dev token becomes owner, admins stay
-- admins, members (who could edit and publish flows) become editors.

ALTER TABLE api_clients DROP CONSTRAINT IF EXISTS api_clients_role_check;
UPDATE api_clients SET role = 'owner' WHERE name = 'dev-token' AND revoked_at IS NULL;
UPDATE api_clients SET role = 'editor' WHERE role = 'member';
ALTER TABLE api_clients
    ALTER COLUMN role SET DEFAULT 'viewer',
    ADD CONSTRAINT api_clients_role_check CHECK (role IN ('owner', 'admin', 'editor', 'viewer'));

ALTER TABLE members DROP CONSTRAINT IF EXISTS members_role_check;
UPDATE members SET role = 'editor' WHERE role = 'member';
ALTER TABLE members
    ALTER COLUMN role SET DEFAULT 'viewer',
    ADD CONSTRAINT members_role_check CHECK (role IN ('owner', 'admin', 'editor', 'viewer'));
