/** Monitoring: sessions, refreshed every two seconds, filtered by flow, status, channel and time. */
import { useState } from 'react';
import { Link, useSearchParams } from 'react-router-dom';
import { isEnded, useFlows, useSessions, type SessionFilters } from '../api/flows';
import { ErrorNote } from '../components/ErrorNote';
import { sessionsApi } from '../api/flows';
import type { SessionSummary } from '../api/types';

const FILTER_KEYS = ['flow_id', 'status', 'channel', 'since', 'until'] as const;

/** A datetime-local input value (local time) as an ISO instant, and back. */
export function localToIso(v: string): string | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function SessionsPage() {
  const [params, setParams] = useSearchParams();
  const [live, setLive] = useState(true);
  const [older, setOlder] = useState<{ items: SessionSummary[]; cursor: string | null }>({ items: [], cursor: null });
  const filters: SessionFilters = {};
  for (const k of FILTER_KEYS) { const v = params.get(k); if (v) (filters as Record<string, string>)[k] = k === 'since' || k === 'until' ? localToIso(v) ?? '' : v; }
  const sessions = useSessions(filters, { live });
  const flows = useFlows();
  const flowName = (id: string) => flows.data?.items.find((f) => f.id === id)?.name ?? id.slice(0, 8);
  const set = (k: string, v: string) => { const p = new URLSearchParams(params); if (v) p.set(k, v); else p.delete(k); setParams(p, { replace: true }); setOlder({ items: [], cursor: null }); };
  const nextCursor = older.cursor ?? sessions.data?.next_cursor ?? null;
  const loadMore = async () => {
    if (!nextCursor) return;
    const r = await sessionsApi.list({ ...filters, cursor: nextCursor });
    setOlder((o) => ({ items: [...o.items, ...r.items], cursor: r.next_cursor ?? null }));
  };
  const items = [...(sessions.data?.items ?? []), ...older.items.filter((o) => !sessions.data?.items.some((s) => s.id === o.id))];

  return (
    <div>
      <h1>Monitoring</h1>
      <div className="card row filters" data-testid="session-filters">
        <label>Flow <select aria-label="Filter by flow" value={params.get('flow_id') ?? ''} onChange={(e) => set('flow_id', e.target.value)}>
          <option value="">all</option>
          {flows.data?.items.map((f) => <option key={f.id} value={f.id}>{f.name}</option>)}
        </select></label>
        <label>Status <select aria-label="Filter by status" value={params.get('status') ?? ''} onChange={(e) => set('status', e.target.value)}>
          <option value="">all</option><option value="active">active</option><option value="waiting">waiting</option><option value="ended">ended</option><option value="failed">failed</option>
        </select></label>
        <label>Channel <select aria-label="Filter by channel" value={params.get('channel') ?? ''} onChange={(e) => set('channel', e.target.value)}>
          <option value="">all</option><option value="chat">chat</option><option value="voice">voice</option><option value="whatsapp">whatsapp</option>
        </select></label>
        <label>From <input aria-label="Since" type="datetime-local" value={params.get('since') ?? ''} onChange={(e) => set('since', e.target.value)} /></label>
        <label>To <input aria-label="Until" type="datetime-local" value={params.get('until') ?? ''} onChange={(e) => set('until', e.target.value)} /></label>
        <label className="row"><input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} /> live</label>
        {sessions.isFetching && <span className="small muted">refreshing…</span>}
      </div>
      <ErrorNote error={sessions.error} context="The sessions could not be loaded" />
      {sessions.data && !items.length && <p className="muted">No sessions match.</p>}
      {items.length > 0 && (
        <table className="table" data-testid="sessions-table">
          <thead><tr><th>Started</th><th>Flow</th><th>Channel</th><th>Status</th><th>Ended</th><th>Session</th></tr></thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.id} data-testid="session-row">
                <td>{new Date(s.created_at).toLocaleString()}</td>
                <td>{flowName(s.flow_id)}{s.flow_version ? ` v${s.flow_version}` : ''}</td>
                <td>{s.channel}</td>
                <td><span className={`badge ${isEnded(s.status) ? '' : 'live'}`}>{s.status}</span></td>
                <td className="small muted">{s.ended_at ? new Date(s.ended_at).toLocaleTimeString() : ''}</td>
                <td><Link to={`/sessions/${s.id}`}>{s.id.slice(0, 8)}</Link></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {nextCursor && <button onClick={() => void loadMore()}>Load older sessions</button>}
    </div>
  );
}
