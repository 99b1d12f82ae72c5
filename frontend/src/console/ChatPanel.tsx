/** Chat with a flow over the HTTP chat API. */
import { useEffect, useRef, useState } from 'react';
import { Link } from 'react-router-dom';
import { flowsApi, isEnded, sendMessageStreaming } from '../api/flows';
import type { ChatMessage } from '../api/types';
import { ErrorNote } from '../components/ErrorNote';

export function ChatPanel({ flowId }: { flowId: string }) {
  const [session, setSession] = useState<{ id: string; status: string } | null>(null);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [live, setLive] = useState('');
  const [error, setError] = useState<unknown>(null);
  const endRef = useRef<HTMLDivElement>(null);
  useEffect(() => { endRef.current?.scrollIntoView?.({ block: 'nearest' }); }, [messages, live]);

  const start = async () => {
    setBusy(true); setError(null); setMessages([]);
    try {
      const s = await flowsApi.startSession(flowId, { channel: 'chat', user: { id: 'dashboard-tester' } });
      setSession({ id: s.id, status: s.status });
      setMessages(s.messages ?? []);
    } catch (e) { setError(e); } finally { setBusy(false); }
  };

  const send = async () => {
    if (!session || !text.trim()) return;
    const t = text.trim();
    setText(''); setBusy(true); setError(null);
    setMessages((m) => [...m, { role: 'user', text: t }]);
    setLive('');
    try {
      // The reply streams in (an LLM's words appear as they come); the final event carries the whole messages.
      const r = await sendMessageStreaming(session.id, t, { onChunk: (c) => setLive((l) => (c.stream_id ? l + c.text : `${l}${l ? '\n' : ''}${c.text}`)) });
      setMessages((m) => [...m, ...(r.messages ?? [])]);
      setSession({ id: session.id, status: r.status });
    } catch (e) { setError(e); } finally { setBusy(false); setLive(''); }
  };

  const ended = session ? isEnded(session.status) : false;
  return (
    <section className="card chat" data-testid="chat-panel">
      <h2>Chat</h2>
      <div className="row">
        <button className="primary" onClick={() => void start()} disabled={busy}>{session ? 'Restart chat' : 'Start chat'}</button>
        {session && <span className="small muted">session <Link to={`/sessions/${session.id}`} data-testid="chat-session-link">{session.id.slice(0, 8)}</Link> · {session.status}</span>}
      </div>
      <ErrorNote error={error} />
      <div className="messages" data-testid="chat-messages">
        {messages.map((m, i) => (
          <div key={i} className={`msg ${m.role === 'user' ? 'user' : 'agent'}`} data-role={m.role}>{m.text}</div>
        ))}
        {busy && session && <div className="msg agent interim" data-testid="chat-streaming">{live || '…'}</div>}
        <div ref={endRef} />
      </div>
      <form className="row" onSubmit={(e) => { e.preventDefault(); void send(); }}>
        <input aria-label="Chat message" value={text} disabled={!session || ended} onChange={(e) => setText(e.target.value)} placeholder={ended ? 'The session has ended' : session ? 'Type a message' : 'Start the chat first'} />
        <button type="submit" disabled={!session || ended || busy || !text.trim()}>Send</button>
      </form>
    </section>
  );
}
