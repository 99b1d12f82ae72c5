/** Knowledge bases: create one, upload documents (with the upload's and the ingestion's progress), see each
 * document's status, delete, and try a query against it. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { documentState, embeddingState, ingesting, knowledgeApi, type KnowledgeDocument } from '../api/knowledge';
import { ErrorNote } from '../components/ErrorNote';

export function KnowledgePage() {
  const qc = useQueryClient();
  const bases = useQuery({
    queryKey: ['knowledge-bases'], queryFn: knowledgeApi.list,
    // Poll while a change of embeddings model is being re-embedded, to show its progress.
    refetchInterval: (q) => (q.state.data?.items.some((b) => b.chunks_current < b.chunks) ? 2000 : false),
  });
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [selected, setSelected] = useState<string | null>(null);
  const invalidate = () => void qc.invalidateQueries({ queryKey: ['knowledge-bases'] });
  const create = useMutation({
    mutationFn: knowledgeApi.create,
    onSuccess: (kb) => { setName(''); setDescription(''); setSelected(kb.id); invalidate(); },
  });
  const remove = useMutation({
    mutationFn: knowledgeApi.remove,
    onSuccess: (_, id) => { if (selected === id) setSelected(null); invalidate(); },
  });
  const current = bases.data?.items.find((b) => b.id === selected) ?? null;
  return (
    <div>
      <h1>Knowledge bases</h1>
      <section className="card">
        <h2>New knowledge base</h2>
        <form className="row" onSubmit={(e) => { e.preventDefault(); if (name.trim()) create.mutate({ name: name.trim(), description }); }}>
          <input aria-label="Knowledge base name" placeholder="name" value={name} onChange={(e) => setName(e.target.value)} />
          <input aria-label="Description" placeholder="description (optional)" value={description} onChange={(e) => setDescription(e.target.value)} />
          <button className="primary" type="submit" disabled={!name.trim() || create.isPending}>Create</button>
        </form>
        <ErrorNote error={create.error} context="The knowledge base was not created" />
      </section>
      <section className="card">
        <h2>Knowledge bases</h2>
        <ErrorNote error={bases.error} context="The knowledge bases could not be loaded" />
        <ErrorNote error={remove.error} context="The knowledge base was not deleted" />
        {bases.data && !bases.data.items.length && <p className="muted">No knowledge bases yet.</p>}
        {bases.data && bases.data.items.length > 0 && (
          <table className="table" data-testid="knowledge-bases">
            <thead><tr><th>Name</th><th>Description</th><th>Documents</th><th>Embeddings</th><th /></tr></thead>
            <tbody>{bases.data.items.map((kb) => (
              <tr key={kb.id} className={kb.id === selected ? 'selected' : undefined}>
                <td><button className="small" onClick={() => setSelected(kb.id)}>{kb.name}</button></td>
                <td className="small">{kb.description}</td><td>{kb.documents}</td><td className="small mono">{embeddingState(kb)}</td>
                <td><button className="danger small" onClick={() => { if (window.confirm(`Delete ${kb.name} and all its documents?`)) remove.mutate(kb.id); }}>Delete</button></td>
              </tr>
            ))}</tbody>
          </table>
        )}
      </section>
      {current && <KnowledgeBaseDetail key={current.id} kbId={current.id} name={current.name} />}
    </div>
  );
}

function KnowledgeBaseDetail({ kbId, name }: { kbId: string; name: string }) {
  const qc = useQueryClient();
  const detail = useQuery({
    queryKey: ['knowledge-base', kbId],
    queryFn: () => knowledgeApi.get(kbId),
    // Poll while something is being ingested: each read also restarts an ingestion that stalled.
    refetchInterval: (q) => (q.state.data && ingesting(q.state.data.items) ? 1000 : false),
  });
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ['knowledge-base', kbId] });
    void qc.invalidateQueries({ queryKey: ['knowledge-bases'] });
  };
  const [sent, setSent] = useState<number | null>(null);
  const upload = useMutation({
    mutationFn: (file: File) => knowledgeApi.upload(kbId, file, setSent),
    onSettled: () => { setSent(null); refresh(); },
  });
  const removeDoc = useMutation({ mutationFn: (doc: string) => knowledgeApi.removeDocument(kbId, doc), onSuccess: refresh });
  return (
    <>
      <section className="card">
        <h2>Documents of {name}</h2>
        <p className="small muted">Text, Markdown, HTML, PDF or DOCX. Each is cut into chunks by its headings and paragraphs, embedded and indexed for search.</p>
        <input aria-label="Upload a document" type="file" accept=".txt,.md,.markdown,.html,.htm,.pdf,.docx,text/plain,text/markdown,text/html,application/pdf,application/vnd.openxmlformats-officedocument.wordprocessingml.document"
          disabled={upload.isPending}
          onChange={(e) => { const file = e.target.files?.[0]; e.target.value = ''; if (file) upload.mutate(file); }} />
        {sent !== null && <Progress label={`uploading ${Math.round(sent * 100)}%`} fraction={sent} />}
        <ErrorNote error={upload.error} context="The document was not uploaded" />
        <ErrorNote error={detail.error ?? removeDoc.error} context="The documents could not be loaded or changed" />
        {detail.data && !detail.data.items.length && <p className="muted">No documents yet.</p>}
        {detail.data && detail.data.items.length > 0 && (
          <table className="table" data-testid="knowledge-documents">
            <thead><tr><th>Title</th><th>Type</th><th>Status</th><th /></tr></thead>
            <tbody>{detail.data.items.map((doc) => (
              <tr key={doc.id}>
                <td>{doc.title}</td><td className="small mono">{doc.content_type}</td>
                <td><DocumentStatusCell doc={doc} /></td>
                <td><button className="danger small" onClick={() => { if (window.confirm(`Delete ${doc.title}?`)) removeDoc.mutate(doc.id); }}>Delete</button></td>
              </tr>
            ))}</tbody>
          </table>
        )}
      </section>
      <SearchBox kbId={kbId} />
    </>
  );
}

function DocumentStatusCell({ doc }: { doc: KnowledgeDocument }) {
  if (doc.status === 'processing') return <Progress label={documentState(doc)} fraction={doc.progress} />;
  return <span className={doc.status === 'failed' ? 'error-text' : doc.status === 'ready' ? 'ok-text' : 'muted'}>{documentState(doc)}</span>;
}

function Progress({ label, fraction }: { label: string; fraction: number }) {
  return (
    <div className="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(fraction * 100)}>
      <div className="progress-bar" style={{ width: `${Math.round(fraction * 100)}%` }} />
      <span>{label}</span>
    </div>
  );
}

function SearchBox({ kbId }: { kbId: string }) {
  const [query, setQuery] = useState('');
  const search = useMutation({ mutationFn: (q: string) => knowledgeApi.search(kbId, q, 5) });
  return (
    <section className="card">
      <h2>Try a query</h2>
      <form className="row" onSubmit={(e) => { e.preventDefault(); if (query.trim()) search.mutate(query.trim()); }}>
        <input aria-label="Search query" placeholder="a question a caller might ask" value={query} onChange={(e) => setQuery(e.target.value)} />
        <button className="primary" type="submit" disabled={!query.trim() || search.isPending}>Search</button>
      </form>
      <ErrorNote error={search.error} context="The search failed" />
      {search.data && !search.data.items.length && <p className="muted">Nothing found.</p>}
      {search.data && search.data.items.length > 0 && (
        <ol data-testid="search-results">{search.data.items.map((hit) => (
          <li key={hit.chunk_id}>
            <div className="small muted">{hit.document_title}{hit.heading ? ` — ${hit.heading}` : ''} · chunk {hit.position + 1} · score {hit.score.toFixed(3)}</div>
            <div>{hit.text}</div>
          </li>
        ))}</ol>
      )}
    </section>
  );
}
