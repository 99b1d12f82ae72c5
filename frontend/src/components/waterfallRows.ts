/** Layout of the latency waterfall: stages placed one after the other, in the field's stage order. */
import type { TurnMetrics } from '../api/types';

export const STAGES = [
  { key: 'end_of_turn_ms', label: 'end-of-turn' },
  { key: 'stt_final_ms', label: 'STT final' },
  { key: 'llm_ttft_ms', label: 'LLM TTFT' },
  { key: 'tts_ttfb_ms', label: 'TTS TTFB' },
] as const;

export type Segment = { key: string; label: string; startMs: number; ms: number };
export type Row = { turn: number; segments: Segment[]; totalMs: number; voiceToVoiceMs: number | null };

export function waterfallRows(turns: TurnMetrics[]): { rows: Row[]; scaleMs: number } {
  const rows: Row[] = [];
  turns.forEach((t, i) => {
    let at = 0;
    const segments: Segment[] = [];
    for (const s of STAGES) {
      const v = t[s.key];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) continue;
      segments.push({ key: s.key, label: s.label, startMs: at, ms: v });
      at += v;
    }
    const v2v = typeof t.voice_to_voice_ms === 'number' && Number.isFinite(t.voice_to_voice_ms) ? t.voice_to_voice_ms : null;
    if (segments.length || v2v != null) rows.push({ turn: i + 1, segments, totalMs: at, voiceToVoiceMs: v2v });
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
