/** One session: transcript, event timeline, variables, per-turn latency waterfall, provider usage. Live while it runs. */
import { useEffect, useState } from 'react';
import { Link, useParams } from 'react-router-dom';
import { currentToken, wsUrl } from '../api/client';
import { isEnded, useSession, useSessionEvents } from '../api/flows';
import type { TurnMetrics } from '../api/types';
import { ErrorNote } from '../components/ErrorNote';
import { Waterfall } from '../components/Waterfall';
import { percentiles } from '../components/waterfallRows';
import { useQueryClient } from '@tanstack/react-query';

export function SessionPage() {
  const { id = '' } = useParams();
  const session = useSession(id);
  const live = !!session.data && !isEnded(session.data.status);
  const events = useSessionEvents(id, live);
  const [liveConnected, setLiveConnected] = useState(false);
  const qc = useQueryClient();

  // While the session runs, its live WebSocket nudges a refetch the moment something happens (polling stays as a fallback).
  useEffect(() => {
    if (!live) return;
    let ws: WebSocket | null = null;
    let closed = false;
    void currentToken().then((t) => {
      if (closed) return;
      try { ws = new WebSocket(wsUrl(`/v1/sessions/${encodeURIComponent(id)}/live?token=${encodeURIComponent(t ?? '')}`)); } catch { return; }
      ws.onopen = () => setLiveConnected(true);
      ws.onclose = () => setLiveConnected(false);
      ws.onmessage = () => { void qc.invalidateQueries({ queryKey: ['session', id] }); void qc.invalidateQueries({ queryKey: ['session-events', id] }); };
    });
    return () => { closed = true; ws?.close(); };
  }, [id, live, qc]);

  if (session.error) return <div><Link to="/sessions">← Monitoring</Link><ErrorNote error={session.error} context="This session could not be loaded" /></div>;
  const s = session.data;
  if (!s) return <p className="muted">Loading session…</p>;
  const turns: TurnMetrics[] = s.metrics?.turns ?? [];
  const v2v = percentiles(turns.map((t) => t.voice_to_voice_ms).filter((x): x is number => typeof x === 'number'));
  return (
    <div className="session-page">
      <Link to="/sessions">← Monitoring</Link>
      <h1>Session {s.id.slice(0, 8)}</h1>
      <p>
        <span className={`badge ${live ? 'live' : ''}`} data-testid="session-status">{s.status}</span>{' '}
        {s.channel} · flow <Link to={`/flows/${s.flow_id}`}>{s.flow_id.slice(0, 8)}</Link>{s.flow_version ? ` v${s.flow_version}` : ''} · started {new Date(s.created_at).toLocaleString()}
        {s.ended_at ? ` · ended ${new Date(s.ended_at).toLocaleString()}` : ''}
        {live && <span className="small muted"> · {liveConnected ? 'live' : 'refreshing every 2 s'}</span>}
      </p>
      <div className="grid2">
        <section className="card">
          <h2>Transcript</h2>
          <div className="messages" data-testid="session-transcript">
            {s.transcript.map((t, i) => (
              <div key={i} className={`msg ${t.role === 'user' ? 'user' : 'agent'}`} data-role={t.role}>
                {t.text}
                {t.created_at && <div className="small muted">{new Date(t.created_at).toLocaleTimeString()}</div>}
              </div>
            ))}
            {!s.transcript.length && <p className="muted">Nothing said yet.</p>}
          </div>
        </section>
        <section className="card">
          <h2>Variables</h2>
          <pre className="mono" data-testid="session-variables">{JSON.stringify(s.variables ?? {}, null, 2)}</pre>
          <h2>Provider usage</h2>
          {s.metrics?.usage && Object.keys(s.metrics.usage).length
            ? <table className="table small"><tbody>{Object.entries(s.metrics.usage).map(([k, v]) => <tr key={k}><td>{k}</td><td className="mono">{typeof v === 'object' ? JSON.stringify(v) : String(v)}</td></tr>)}</tbody></table>
            : <p className="muted">No usage recorded.</p>}
        </section>
      </div>
      <section className="card">
        <h2>Per-turn latency</h2>
        {v2v && <p className="small">voice-to-voice p50 {Math.round(v2v.p50)} ms · p95 {Math.round(v2v.p95)} ms</p>}
        <Waterfall turns={turns} />
      </section>
      <section className="card">
        <h2>Event timeline</h2>
        <ErrorNote error={events.error} context="The events could not be loaded" />
        <ol className="timeline" data-testid="session-events">
          {events.data?.items.map((e) => (
            <li key={`${e.seq}-${e.event_id}`}>
              <span className="small muted">{new Date(e.created_at).toLocaleTimeString()}</span>{' '}
              <span className={`badge dir-${e.direction ?? ''}`}>{e.direction ?? ''}</span> <strong>{e.type}</strong>
              <details><summary className="small muted">#{e.seq} payload</summary><pre className="mono small">{JSON.stringify(e.payload, null, 2)}</pre></details>
            </li>
          ))}
        </ol>
      </section>
    </div>
  );
}
