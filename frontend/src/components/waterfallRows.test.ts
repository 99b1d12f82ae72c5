import { describe, expect, it } from 'vitest';
import { percentiles, waterfallRows } from './waterfallRows';

describe('waterfallRows', () => {
  it('lays stages end to end in the field’s order and scales to the longest turn', () => {
    const { rows, scaleMs } = waterfallRows([
      { end_of_turn_ms: 300, stt_final_ms: 700, llm_ttft_ms: 50, tts_ttfb_ms: 250, voice_to_voice_ms: 1400 },
      { end_of_turn_ms: 200, stt_final_ms: null, llm_ttft_ms: 20, tts_ttfb_ms: 100 },
      {},
    ]);
    expect(rows).toHaveLength(2);
    expect(rows[0].segments.map((s) => [s.key, s.startMs, s.ms])).toEqual([
      ['end_of_turn_ms', 0, 300], ['stt_final_ms', 300, 700], ['llm_ttft_ms', 1000, 50], ['tts_ttfb_ms', 1050, 250],
    ]);
    expect(rows[1].segments.map((s) => s.key)).toEqual(['end_of_turn_ms', 'llm_ttft_ms', 'tts_ttfb_ms']);
    expect(rows[1].voiceToVoiceMs).toBeNull();
    expect(scaleMs).toBe(1400);
  });
});

describe('percentiles', () => {
  it('gives nearest-rank p50 and p95', () => {
    expect(percentiles(Array.from({ length: 20 }, (_, i) => 20 - i))).toEqual({ p50: 10, p95: 19 });
    expect(percentiles([5])).toEqual({ p50: 5, p95: 5 });
    expect(percentiles([])).toBeNull();
  });
});
