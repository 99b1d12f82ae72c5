/** Layout of the latency waterfall: stages placed one after the other, in the field's stage order. */
import type { TurnMetrics } from '../api/types';

export const STAGES = [
  { key: 'end_of_turn_ms', label: 'end-of-turn' },
  { key: 'stt_final_ms', label: 'STT final' },
  { key: 'llm_ttft_ms', label: 'LLM TTFT' },
  { key: 'tts_ttfb_ms', label: 'TTS TTFB' },
] as const;

export type Segment = { key: string; label: string; startMs: number; ms: number };
export type Row = { turn: number; segments: Segment[]; totalMs: number; voiceToVoiceMs: number | null; figures: string };

/**
 * The voice pipeline measures end-of-turn, STT final and voice-to-voice from the moment the caller stopped
 * speaking; LLM time to first token and TTS time to first byte are durations that follow one another.
 * So: end-of-turn spans [0, eot]; STT runs on to `stt_final_ms` (from [eot, stt]); then LLM, then TTS.
 * The rows' ends then line up with voice-to-voice, less AICO's own overhead.
 */
export function waterfallRows(turns: TurnMetrics[]): { rows: Row[]; scaleMs: number } {
  const rows: Row[] = [];
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null);
  turns.forEach((t, i) => {
    const segments: Segment[] = [];
    let at = 0;
    const eot = num(t.end_of_turn_ms);
    if (eot !== null) { segments.push({ key: 'end_of_turn_ms', label: 'end-of-turn', startMs: 0, ms: eot }); at = eot; }
    const stt = num(t.stt_final_ms);
    if (stt !== null) {
      // Measured from the end of speech: what lies beyond the end-of-turn wait is the decoding still to do.
      const start = eot !== null && stt >= eot ? eot : at;
      const end = eot !== null && stt >= eot ? stt : at + stt;
      segments.push({ key: 'stt_final_ms', label: 'STT final', startMs: start, ms: end - start });
      at = end;
    }
    for (const s of STAGES.slice(2)) {
      const v = num(t[s.key]);
      if (v === null) continue;
      segments.push({ key: s.key, label: s.label, startMs: at, ms: v });
      at += v;
    }
    const v2v = num(t.voice_to_voice_ms);
    const figures = [...STAGES.map((s) => [s.label, num(t[s.key])] as const), ['voice-to-voice', v2v] as const]
      .filter(([, v]) => v !== null).map(([l, v]) => `${l} ${Math.round(v as number)} ms`).join(' · ');
    if (segments.length || v2v != null) rows.push({ turn: i + 1, segments, totalMs: at, voiceToVoiceMs: v2v, figures });
  });
  const scaleMs = Math.max(1, ...rows.map((r) => Math.max(r.totalMs, r.voiceToVoiceMs ?? 0)));
  return { rows, scaleMs };
}

/** p50 and p95 (nearest rank) of a list of numbers. */
export function percentiles(xs: number[]): { p50: number; p95: number } | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const rank = (p: number) => v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
  return { p50: rank(50), p95: rank(95) };
}
