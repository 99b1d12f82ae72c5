/** Talk to a flow by voice: microphone → voice WebSocket → agent audio, with the live transcript and per-turn latency. */
import { useEffect, useRef, useState } from 'react';
import { Link } from 'react-router-dom';
import { wsUrl } from '../api/client';
import { flowsApi } from '../api/flows';
import type { TurnMetrics } from '../api/types';
import { ErrorNote } from '../components/ErrorNote';
import { Waterfall } from '../components/Waterfall';
import { percentiles } from '../components/waterfallRows';
import { appendAgentDelta, applyTranscript, type LiveLine } from '../voice/transcript';
import { VoiceCall, type VoiceEvent } from '../voice/voiceCall';

export function VoicePanel({ flowId }: { flowId: string }) {
  const [state, setState] = useState<'idle' | 'connecting' | 'live' | 'ended' | 'error'>('idle');
  const [detail, setDetail] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [lines, setLines] = useState<LiveLine[]>([]);
  const [turns, setTurns] = useState<TurnMetrics[]>([]);
  const [speaking, setSpeaking] = useState(false);
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [greetingMs, setGreetingMs] = useState<number | null>(null);
  const call = useRef<VoiceCall | null>(null);
  useEffect(() => () => call.current?.stop(), []);

  const system = (text: string) => setLines((l) => [...l, { role: 'system', text, final: true }]);
  const onEvent = (ev: VoiceEvent) => {
    switch (ev.type) {
      case 'ready': setDetail(`agent audio at ${ev.sample_rate} Hz`); break;
      case 'transcript':
        setLines((l) => applyTranscript(l, ev));
        break;
      case 'agent_text':
        // Streamed pieces of an LLM reply; whole sentences come again as a final `transcript`.
        if (!ev.final) setLines((l) => appendAgentDelta(l, ev.text));
        break;
      case 'agent_speech_started': setSpeaking(true); break;
      case 'agent_speech_ended': setSpeaking(false); break;
      case 'interrupted':
        setSpeaking(false);
        system('(the caller interrupted the agent)');
        break;
      case 'metrics':
        if (ev.turn) { const turn: TurnMetrics = ev.turn; setTurns((t) => [...t, turn]); }
        if (typeof ev.greeting_first_audio_ms === 'number') setGreetingMs(ev.greeting_first_audio_ms);
        break;
      case 'timer': system(`(timer: ${ev.name})`); break;
      case 'transfer': system(`(transfer to ${ev.to}, ${ev.mode})`); break;
      case 'dtmf': system(`(keypad: ${ev.digit})`); break;
      case 'error': setError(new Error(ev.message || `voice error ${ev.code}`)); break;
      case 'end': setDetail(ev.reason ? `ended: ${ev.reason}` : 'the flow ended the call'); break;
    }
  };

  const start = async () => {
    setError(null); setLines([]); setTurns([]); setDetail(''); setGreetingMs(null);
    try {
      setState('connecting');
      const s = await flowsApi.startSession(flowId, { channel: 'voice', user: { id: 'dashboard-tester' } });
      setSessionId(s.id);
      if (!s.voice?.url) throw new Error('The server started the session but gave no voice connection (voice.url is missing). Voice may not be available on this server yet.');
      const c = new VoiceCall(wsUrl(s.voice.url), {
        onEvent,
        onState: (st, d) => { setState(st); if (d) setDetail(d); if (st !== 'live') setSpeaking(false); },
      });
      call.current = c;
      await c.start();
    } catch (e) {
      call.current?.stop();
      setState('error');
      setError(e instanceof DOMException && e.name === 'NotAllowedError' ? new Error('The browser did not allow the microphone. Allow it and try again.') : e);
    }
  };

  const v2v = percentiles(turns.map((t) => t.voice_to_voice_ms).filter((x): x is number => typeof x === 'number'));
  return (
    <section className="card voice" data-testid="voice-panel">
      <h2>Voice</h2>
      <div className="row">
        {state === 'live' || state === 'connecting'
          ? <button className="danger" onClick={() => call.current?.stop()}>Hang up</button>
          : <button className="primary" onClick={() => void start()}>Start voice call</button>}
        <span className="small" data-testid="voice-state">{state}{detail ? ` · ${detail}` : ''}{speaking ? ' · agent speaking' : ''}</span>
        {sessionId && <Link className="small" to={`/sessions/${sessionId}`}>session {sessionId.slice(0, 8)}</Link>}
      </div>
      <ErrorNote error={error} context="The voice call could not start" />
      <div className="messages" data-testid="voice-transcript">
        {lines.map((l, i) => <div key={i} className={`msg ${l.role === 'user' ? 'user' : l.role === 'system' ? 'system' : 'agent'}${l.final ? '' : ' interim'}`} data-role={l.role}>{l.text}</div>)}
        {!lines.length && <p className="muted small">The live transcript of both sides appears here.</p>}
      </div>
      <h3>Per-turn latency</h3>
      {greetingMs != null && <p className="small" data-testid="greeting-ms">first greeting audio {Math.round(greetingMs)} ms after connecting</p>}
      {v2v && <p className="small">voice-to-voice p50 {Math.round(v2v.p50)} ms · p95 {Math.round(v2v.p95)} ms over {turns.length} turn{turns.length > 1 ? 's' : ''}</p>}
      <Waterfall turns={turns} />
    </section>
  );
}
