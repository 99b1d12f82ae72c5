-- Knowledge bases (documents cut into chunks, each embedded once and indexed for full-text
-- search) and episodic memory (a user's turns, embedded), all on pgvector.

CREATE TABLE knowledge_bases (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    -- The embeddings model the chunks were embedded with (a change re-embeds).
    embedding_kind text NOT NULL DEFAULT 'minilm',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_bases_org ON knowledge_bases (org_id, created_at);

CREATE TABLE knowledge_documents (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kb_id       uuid NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    title       text NOT NULL,
    content_type text NOT NULL,
    text        text NOT NULL,
    content_sha256 text NOT NULL,
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
    progress    real NOT NULL DEFAULT 0,
    error       text,
    chunk_count integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_documents_kb ON knowledge_documents (kb_id, created_at);

CREATE TABLE knowledge_chunks (
    id          bigserial PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kb_id       uuid NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    document_id uuid NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
    position    integer NOT NULL,
    heading     text NOT NULL DEFAULT '',
    text        text NOT NULL,
    -- Identical text (in the organization) is embedded once: its vector is copied.
    text_sha256 text NOT NULL,
    embedding   vector(384) NOT NULL,
    tsv         tsvector GENERATED ALWAYS AS (
                    to_tsvector('english', heading || ' ' || text)) STORED
);
CREATE INDEX knowledge_chunks_doc ON knowledge_chunks (document_id, position);
CREATE INDEX knowledge_chunks_hash ON knowledge_chunks (org_id, text_sha256);
CREATE INDEX knowledge_chunks_kb ON knowledge_chunks (kb_id);
CREATE INDEX knowledge_chunks_hnsw ON knowledge_chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);

-- Episodic memory: what a user said, with their organization and cluster (users who share).
CREATE TABLE memory_episodes (
    id          bigserial PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id     text NOT NULL,
    user_cluster text,
    session_id  uuid,
    role        text NOT NULL DEFAULT 'user',
    text        text NOT NULL,
    embedding   vector(384) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX memory_episodes_user ON memory_episodes (org_id, user_id, created_at);
CREATE INDEX memory_episodes_cluster ON memory_episodes (org_id, user_cluster)
    WHERE user_cluster IS NOT NULL;
CREATE INDEX memory_episodes_hnsw ON memory_episodes USING hnsw (embedding vector_cosine_ops);

SELECT aico_enable_org_rls(t) FROM unnest(ARRAY[
    'knowledge_bases', 'knowledge_documents', 'knowledge_chunks', 'memory_episodes'
]::regclass[]) AS t;
