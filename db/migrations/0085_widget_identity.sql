-- The web widget's identity secret (shown once at creation): the host site's backend signs a
-- visitor token with it to name its user, so the session (and memory) follows that user. Sealed
-- with AES-GCM like organization secrets.
ALTER TABLE widgets ADD COLUMN identity_key_id text;
ALTER TABLE widgets ADD COLUMN identity_nonce bytea;
ALTER TABLE widgets ADD COLUMN identity_ciphertext bytea;
