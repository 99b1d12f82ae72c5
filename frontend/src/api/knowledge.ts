/** Knowledge bases (documents, ingestion status, search) and a user's memory (episodes, facts, erasure). */
import { api, currentToken, del, get, post } from './client';
import { ApiError, errorFromResponse } from './errors';

export type KnowledgeBase = {
  id: string;
  name: string;
  description: string;
  embedding_kind: string;
  created_at: string;
  documents: number;
  /** Chunks, and how many carry `embedding_kind`: fewer while a change of model is re-embedded. */
  chunks: number;
  chunks_current: number;
};

export type DocumentStatus = 'queued' | 'processing' | 'ready' | 'failed';

export type KnowledgeDocument = {
  id: string;
  knowledge_base_id: string;
  title: string;
  content_type: string;
  status: DocumentStatus;
  progress: number;
  error: string | null;
  chunk_count: number;
  created_at: string;
  updated_at: string;
};

export type SearchHit = {
  chunk_id: number;
  document_id: string;
  document_title: string;
  position: number;
  heading: string;
  text: string;
  score: number;
};

export type Episode = { id: number; cluster: string | null; session_id: string | null; role: string; text: string; created_at: string };
export type Fact = { type: string; value: string; created_at: string; superseded_at: string | null };
export type UserMemory = { user_id: string; total: number; limit: number; offset: number; episodic: Episode[]; facts: Fact[] };

const enc = encodeURIComponent;
const base = (kb: string) => `/v1/knowledge-bases/${enc(kb)}`;

export const knowledgeApi = {
  list: () => get<{ items: KnowledgeBase[] }>('/v1/knowledge-bases'),
  get: (kb: string) => get<KnowledgeBase & { items: KnowledgeDocument[] }>(base(kb)),
  create: (body: { name: string; description?: string }) => post<KnowledgeBase>('/v1/knowledge-bases', body),
  remove: (kb: string) => del(base(kb)),
  addText: (kb: string, body: { title: string; text: string }) => post<KnowledgeDocument>(`${base(kb)}/documents`, body),
  removeDocument: (kb: string, doc: string) => del(`${base(kb)}/documents/${enc(doc)}`),
  search: (kb: string, query: string, topK = 5) =>
    post<{ items: SearchHit[] }>(`${base(kb)}/search`, { query, top_k: topK }),
  upload: (kb: string, file: File, onProgress?: (sent: number) => void) => uploadDocument(kb, file, onProgress),
};

export const memoryApi = {
  get: (user: string, offset = 0) => get<UserMemory>(`/v1/users/${enc(user)}/memory?offset=${offset}`),
  erase: (user: string) =>
    api<{ user_id: string; deleted: Record<string, number> }>(`/v1/users/${enc(user)}/memory`, { method: 'DELETE' }),
};

/**
 * Upload a file as multipart (`file` part). XMLHttpRequest, not fetch: only it reports upload
 * progress; `onProgress` hears the fraction sent (0–1).
 */
export async function uploadDocument(kb: string, file: File, onProgress?: (sent: number) => void): Promise<KnowledgeDocument> {
  const token = await currentToken();
  const form = new FormData();
  form.append('file', file, file.name);
  return await new Promise<KnowledgeDocument>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${base(kb)}/documents`);
    xhr.setRequestHeader('Accept', 'application/json');
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
    xhr.onerror = () => reject(new ApiError({ status: 0, code: 'network', message: 'network error' }));
    xhr.onload = () => {
      let body: unknown = xhr.responseText;
      try { body = JSON.parse(xhr.responseText); } catch { /* keep text */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as KnowledgeDocument);
      else reject(errorFromResponse(xhr.status, body, xhr.statusText));
    };
    xhr.send(form);
  });
}

/** A document's state in words: "ready · 12 chunks", "processing 40%", "failed: why". */
export function documentState(doc: Pick<KnowledgeDocument, 'status' | 'progress' | 'error' | 'chunk_count'>): string {
  switch (doc.status) {
    case 'ready': return `ready · ${doc.chunk_count} chunk${doc.chunk_count === 1 ? '' : 's'}`;
    case 'processing': return `processing ${Math.round(doc.progress * 100)}%`;
    case 'failed': return `failed: ${doc.error ?? 'unknown reason'}`;
    default: return 'queued';
  }
}

/** The embeddings column: the model, and the re-embedding's progress while one runs. */
export function embeddingState(kb: Pick<KnowledgeBase, 'embedding_kind' | 'chunks' | 'chunks_current'>): string {
  if (kb.chunks_current >= kb.chunks) return kb.embedding_kind;
  return `${kb.embedding_kind} (re-embedding ${Math.floor((kb.chunks_current / kb.chunks) * 100)}%)`;
}

/** Whether a knowledge base still has documents being ingested (the page polls until none). */
export function ingesting(docs: Pick<KnowledgeDocument, 'status'>[]): boolean {
  return docs.some((d) => d.status === 'queued' || d.status === 'processing');
}

/** A user's facts split into the current ones (one per type) and the superseded ones, newest first. */
export function splitFacts(facts: Fact[]): { current: Fact[]; superseded: Fact[] } {
  const current = facts.filter((f) => f.superseded_at === null).sort((a, b) => a.type.localeCompare(b.type));
  const superseded = facts.filter((f) => f.superseded_at !== null)
    .sort((a, b) => (b.superseded_at ?? '').localeCompare(a.superseded_at ?? ''));
  return { current, superseded };
}
