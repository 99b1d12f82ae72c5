import { describe, expect, it } from 'vitest';
import { Framer, Resampler, bytesToPcm16, floatToPcm16, pcm16ToBytes, pcm16ToFloat, resample } from './pcm';

const sine = (freq: number, rate: number, seconds: number) =>
  Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => 0.5 * Math.sin((2 * Math.PI * freq * i) / rate));

/** Dominant frequency by counting upward zero crossings. */
function frequency(x: Float32Array, rate: number): number {
  let n = 0;
  for (let i = 1; i < x.length; i++) if (x[i - 1] < 0 && x[i] >= 0) n++;
  return (n * rate) / x.length;
}

describe('PCM16 conversion', () => {
  it('maps full scale to the 16-bit limits and clamps beyond', () => {
    expect(Array.from(floatToPcm16(Float32Array.from([0, 1, -1, 2, -2, 0.5])))).toEqual([0, 32767, -32768, 32767, -32768, 16384]);
  });

  it('round-trips within one step', () => {
    const x = sine(440, 16000, 0.05);
    const back = pcm16ToFloat(floatToPcm16(x));
    for (let i = 0; i < x.length; i++) expect(Math.abs(back[i] - x[i])).toBeLessThan(1 / 16000);
  });

  it('writes and reads little-endian bytes', () => {
    const bytes = pcm16ToBytes(Int16Array.from([1, -2, 0x1234]));
    expect(Array.from(new Uint8Array(bytes))).toEqual([0x01, 0x00, 0xfe, 0xff, 0x34, 0x12]);
    expect(Array.from(bytesToPcm16(bytes))).toEqual([1, -2, 0x1234]);
    expect(bytesToPcm16(new ArrayBuffer(3)).length).toBe(1); // a torn last byte is dropped
  });
});

describe('Resampler', () => {
  it('changes the length by the rate ratio and keeps the pitch (48 kHz → 16 kHz)', () => {
    const x = sine(440, 48000, 1);
    const y = resample(x, 48000, 16000);
    expect(Math.abs(y.length - 16000)).toBeLessThanOrEqual(1);
    expect(Math.abs(frequency(y, 16000) - 440)).toBeLessThan(5); // 1 %
  });

  it('upsamples 22.05 kHz agent audio to 48 kHz, keeping the pitch', () => {
    const x = sine(300, 22050, 0.5);
    const y = resample(x, 22050, 48000);
    expect(Math.abs(y.length - 24000)).toBeLessThanOrEqual(2);
    expect(Math.abs(frequency(y, 48000) - 300)).toBeLessThan(3);
  });

  it('gives the same samples chunk by chunk as in one piece', () => {
    const x = sine(1000, 44100, 0.2);
    const whole = resample(x, 44100, 16000);
    const r = new Resampler(44100, 16000);
    const parts: number[] = [];
    for (let i = 0; i < x.length; i += 128) parts.push(...r.process(x.subarray(i, i + 128)));
    expect(parts.length).toBe(whole.length);
    for (let i = 0; i < whole.length; i++) expect(parts[i]).toBeCloseTo(whole[i], 5);
  });

  it('passes audio through at equal rates and refuses bad rates', () => {
    const x = Float32Array.from([0.1, 0.2]);
    expect(Array.from(resample(x, 16000, 16000))).toEqual(Array.from(x));
    expect(() => new Resampler(0, 16000)).toThrow();
  });

  it('attenuates a tone above the new Nyquist frequency when downsampling', () => {
    const x = sine(11000, 48000, 0.5); // above 8 kHz: would alias at 16 kHz
    const y = resample(x, 48000, 16000);
    const rms = Math.sqrt(y.reduce((a, v) => a + v * v, 0) / y.length);
    expect(rms).toBeLessThan(0.05 * (0.5 / Math.SQRT2)); // at least 26 dB down
  });
});

describe('Framer', () => {
  it('cuts 20 ms frames and keeps the rest for the next push', () => {
    const f = new Framer(16000, 20);
    expect(f.frameSamples).toBe(320);
    expect(f.push(new Int16Array(300))).toHaveLength(0);
    expect(f.pending).toBe(300);
    const frames = f.push(Int16Array.from({ length: 700 }, (_, i) => i + 1));
    expect(frames).toHaveLength(3);
    expect(frames.every((fr) => fr.length === 320)).toBe(true);
    expect(frames[0][300]).toBe(1); // the new samples follow the kept ones, in order
    expect(f.pending).toBe(40);
  });

  it('grows for a push larger than its buffer', () => {
    const f = new Framer(8000, 20);
    expect(f.push(new Int16Array(10_000))).toHaveLength(62);
    expect(f.pending).toBe(80);
  });
});
