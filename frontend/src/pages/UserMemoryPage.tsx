/** A user's memory: what the agent remembers of them (earlier turns, current and superseded facts), and erasing it
 * all (every table: episodes, facts, sessions and what channels kept under their id). */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { memoryApi, splitFacts } from '../api/knowledge';
import { ErrorNote } from '../components/ErrorNote';

const PAGE = 50;

export function UserMemoryPage() {
  const qc = useQueryClient();
  const [input, setInput] = useState('');
  const [user, setUser] = useState<string | null>(null);
  const [offset, setOffset] = useState(0);
  const memory = useQuery({
    queryKey: ['user-memory', user, offset],
    queryFn: () => memoryApi.get(user as string, offset),
    enabled: user !== null,
  });
  const erase = useMutation({
    mutationFn: memoryApi.erase,
    onSuccess: () => { setOffset(0); void qc.invalidateQueries({ queryKey: ['user-memory'] }); },
  });
  const facts = memory.data ? splitFacts(memory.data.facts) : null;
  return (
    <div>
      <h1>User memory</h1>
      <section className="card">
        <p className="small muted">A user is the id a session was started with (<span className="mono">"user": {'{"id"}'}</span>), a WhatsApp number or a caller's number.</p>
        <form className="row" onSubmit={(e) => { e.preventDefault(); if (input.trim()) { setUser(input.trim()); setOffset(0); erase.reset(); } }}>
          <input aria-label="User id" placeholder="user id" value={input} onChange={(e) => setInput(e.target.value)} />
          <button className="primary" type="submit" disabled={!input.trim()}>Show memory</button>
        </form>
      </section>
      {user !== null && (
        <section className="card" data-testid="user-memory">
          <h2>What is remembered of {user}</h2>
          <ErrorNote error={memory.error} context="The memory could not be loaded" />
          <ErrorNote error={erase.error} context="The memory was not erased" />
          {erase.data && (
            <p className="ok-text" role="status">
              Erased: {erase.data.deleted.episodes ?? 0} remembered turns, {erase.data.deleted.facts ?? 0} facts, {erase.data.deleted.sessions ?? 0} sessions.
            </p>
          )}
          {facts && (
            <>
              <h3>Facts</h3>
              {!facts.current.length && <p className="muted">No facts.</p>}
              {facts.current.length > 0 && (
                <table className="table" data-testid="user-facts">
                  <thead><tr><th>Type</th><th>Value</th><th>Since</th></tr></thead>
                  <tbody>{facts.current.map((f) => (
                    <tr key={`${f.type}-${f.created_at}`}><td>{f.type.replace(/_/g, ' ')}</td><td>{f.value}</td><td className="small">{new Date(f.created_at).toLocaleString()}</td></tr>
                  ))}</tbody>
                </table>
              )}
              {facts.superseded.length > 0 && (
                <details>
                  <summary className="small">{facts.superseded.length} superseded (kept for audit)</summary>
                  <ul className="small">{facts.superseded.map((f) => (
                    <li key={`${f.type}-${f.created_at}`}>{f.type.replace(/_/g, ' ')}: {f.value} (until {new Date(f.superseded_at as string).toLocaleString()})</li>
                  ))}</ul>
                </details>
              )}
            </>
          )}
          {memory.data && (
            <>
              <h3>Earlier turns ({memory.data.total})</h3>
              {!memory.data.episodic.length && <p className="muted">Nothing remembered.</p>}
              {memory.data.episodic.length > 0 && (
                <table className="table" data-testid="user-episodes">
                  <thead><tr><th>When</th><th>Said</th><th>Cluster</th></tr></thead>
                  <tbody>{memory.data.episodic.map((e) => (
                    <tr key={e.id}><td className="small">{new Date(e.created_at).toLocaleString()}</td><td>{e.text}</td><td className="small mono">{e.cluster ?? ''}</td></tr>
                  ))}</tbody>
                </table>
              )}
              {memory.data.total > PAGE && (
                <div className="row">
                  <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>Newer</button>
                  <button disabled={offset + PAGE >= memory.data.total} onClick={() => setOffset(offset + PAGE)}>Older</button>
                </div>
              )}
              <button className="danger" disabled={erase.isPending}
                onClick={() => { if (window.confirm(`Erase everything stored about ${user}? Their sessions, remembered turns and facts are deleted for good.`)) erase.mutate(user); }}>
                Erase all memory of this user
              </button>
            </>
          )}
        </section>
      )}
    </div>
  );
}
