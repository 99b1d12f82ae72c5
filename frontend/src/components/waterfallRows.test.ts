import { describe, expect, it } from 'vitest';
import { percentiles, waterfallRows } from './waterfallRows';

describe('waterfallRows', () => {
  it('measures end-of-turn and STT from the end of speech, then lays LLM and TTS after them', () => {
    const { rows, scaleMs } = waterfallRows([
      { end_of_turn_ms: 450, stt_final_ms: 1100, llm_ttft_ms: 50, tts_ttfb_ms: 250, voice_to_voice_ms: 1420 },
      { end_of_turn_ms: 200, stt_final_ms: null, llm_ttft_ms: 20, tts_ttfb_ms: 100 },
      {},
    ]);
    expect(rows).toHaveLength(2);
    expect(rows[0].segments.map((s) => [s.key, s.startMs, s.ms])).toEqual([
      ['end_of_turn_ms', 0, 450], ['stt_final_ms', 450, 650], ['llm_ttft_ms', 1100, 50], ['tts_ttfb_ms', 1150, 250],
    ]);
    expect(rows[0].figures).toBe('end-of-turn 450 ms · STT final 1100 ms · LLM TTFT 50 ms · TTS TTFB 250 ms · voice-to-voice 1420 ms');
    expect(rows[0].totalMs).toBe(1400); // voice-to-voice 1420: 20 ms left for AICO itself
    expect(rows[1].segments.map((s) => s.key)).toEqual(['end_of_turn_ms', 'llm_ttft_ms', 'tts_ttfb_ms']);
    expect(rows[1].voiceToVoiceMs).toBeNull();
    expect(scaleMs).toBe(1420);
  });

  it('treats an STT figure below the end-of-turn wait as a duration after it', () => {
    const { rows } = waterfallRows([{ end_of_turn_ms: 500, stt_final_ms: 300 }]);
    expect(rows[0].segments[1]).toMatchObject({ startMs: 500, ms: 300 });
  });
});

describe('percentiles', () => {
  it('gives nearest-rank p50 and p95', () => {
    expect(percentiles(Array.from({ length: 20 }, (_, i) => 20 - i))).toEqual({ p50: 10, p95: 19 });
    expect(percentiles([5])).toEqual({ p50: 5, p95: 5 });
    expect(percentiles([])).toBeNull();
  });
});
