/** Per-turn latency as a waterfall: end-of-turn delay, STT final, LLM time to first token, TTS time to first byte. */
import type { TurnMetrics } from '../api/types';
import { waterfallRows, STAGES } from './waterfallRows';

export function Waterfall({ turns }: { turns: TurnMetrics[] }) {
  const { rows, scaleMs } = waterfallRows(turns);
  if (!rows.length) return <p className="muted">No per-turn latency recorded (chat sessions have none; voice sessions record one row per turn).</p>;
  return (
    <div className="waterfall" data-testid="waterfall">
      <div className="legend">
        {STAGES.map((s) => <span key={s.key}><i className={`sw stage-${s.key}`} /> {s.label}</span>)}
        <span><i className="sw v2v" /> voice-to-voice</span>
      </div>
      {rows.map((r) => (
        <div className="wf-row" key={r.turn}>
          <div className="wf-label">Turn {r.turn}</div>
          <div className="wf-track">
            {r.segments.map((s) => (
              <div key={s.key} className={`wf-seg stage-${s.key}`} style={{ left: `${(s.startMs / scaleMs) * 100}%`, width: `${Math.max(0.5, (s.ms / scaleMs) * 100)}%` }} title={`${s.label}: ${Math.round(s.ms)} ms`} />
            ))}
            {r.voiceToVoiceMs != null && <div className="wf-v2v" style={{ left: `${(r.voiceToVoiceMs / scaleMs) * 100}%` }} title={`voice-to-voice ${Math.round(r.voiceToVoiceMs)} ms`} />}
          </div>
          <div className="wf-total small">{r.voiceToVoiceMs != null ? `${Math.round(r.voiceToVoiceMs)} ms` : `${Math.round(r.totalMs)} ms`}</div>
          <div className="wf-figures small muted">{r.figures}</div>
        </div>
      ))}
      <div className="small muted">Scale: 0 – {Math.round(scaleMs)} ms from the end of the caller's speech. End-of-turn and STT final count from there; LLM and TTS follow.</div>
    </div>
  );
}
