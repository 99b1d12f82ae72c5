/** PCM16 conversion, resampling and 20 ms framing for the voice WebSocket. */

/** Float samples in [-1, 1] to 16-bit little-endian PCM (clamped). */
export function floatToPcm16(input: Float32Array): Int16Array {
  const out = new Int16Array(input.length);
  for (let i = 0; i < input.length; i++) {
    const s = Math.max(-1, Math.min(1, input[i]));
    out[i] = s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff);
  }
  return out;
}

/** 16-bit PCM to float samples in [-1, 1). */
export function pcm16ToFloat(input: Int16Array): Float32Array {
  const out = new Float32Array(input.length);
  for (let i = 0; i < input.length; i++) out[i] = input[i] / 0x8000;
  return out;
}

/** Read little-endian PCM16 from bytes (the wire order), whatever the platform's byte order. */
export function bytesToPcm16(buf: ArrayBuffer): Int16Array {
  const view = new DataView(buf);
  const out = new Int16Array(Math.floor(buf.byteLength / 2));
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

export function pcm16ToBytes(samples: Int16Array): ArrayBuffer {
  const buf = new ArrayBuffer(samples.length * 2);
  const view = new DataView(buf);
  for (let i = 0; i < samples.length; i++) view.setInt16(i * 2, samples[i], true);
  return buf;
}

/**
 * Streaming linear-interpolation resampler. It keeps its phase and last sample between chunks,
 * so that resampling a stream chunk by chunk gives the same samples as resampling it whole.
 * Downsampling first low-passes (a Blackman-windowed sinc FIR below the new Nyquist frequency)
 * so that what the new rate cannot carry does not fold back as aliasing.
 */
export class Resampler {
  private readonly ratio: number;
  private pos = 0; // position of the next output sample, in input samples, relative to the start of `prev`
  private prev: number | null = null;
  private readonly taps: Float32Array | null;
  private tail: Float32Array; // last raw samples, so the anti-alias filter runs across chunk edges

  constructor(readonly fromRate: number, readonly toRate: number) {
    if (fromRate <= 0 || toRate <= 0) throw new Error('sample rates must be positive');
    this.ratio = fromRate / toRate;
    this.taps = this.ratio > 1 ? lowpassTaps(0.45 / this.ratio, 63) : null;
    this.tail = new Float32Array(this.taps ? this.taps.length - 1 : 0);
  }

  process(input: Float32Array): Float32Array {
    if (this.fromRate === this.toRate) return input.slice();
    const src = this.taps ? this.filter(input, this.taps) : input;
    // Working buffer: the previous chunk's last sample, then this chunk.
    const hasPrev = this.prev !== null;
    const buf = new Float32Array(src.length + (hasPrev ? 1 : 0));
    if (hasPrev) buf[0] = this.prev!;
    buf.set(src, hasPrev ? 1 : 0);
    const out: number[] = [];
    let pos = hasPrev ? this.pos : 0;
    while (pos <= buf.length - 1) {
      const i = Math.floor(pos);
      const frac = pos - i;
      const a = buf[i];
      const b = i + 1 < buf.length ? buf[i + 1] : a;
      if (i + 1 >= buf.length && frac > 0) break;
      out.push(a + (b - a) * frac);
      pos += this.ratio;
    }
    // Carry the phase relative to the last sample, which becomes next chunk's `prev`.
    this.pos = pos - (buf.length - 1);
    this.prev = buf.length ? buf[buf.length - 1] : this.prev;
    return Float32Array.from(out);
  }

  private filter(input: Float32Array, taps: Float32Array): Float32Array {
    const joined = new Float32Array(this.tail.length + input.length);
    joined.set(this.tail);
    joined.set(input, this.tail.length);
    const out = new Float32Array(input.length);
    const off = this.tail.length;
    for (let i = 0; i < input.length; i++) {
      let acc = 0;
      for (let k = 0; k < taps.length; k++) acc += taps[k] * joined[off + i - k];
      out[i] = acc;
    }
    this.tail = joined.slice(joined.length - this.tail.length);
    return out;
  }
}

/** Windowed-sinc low-pass taps; `cutoff` in cycles per sample (0 – 0.5), unity gain at DC. */
export function lowpassTaps(cutoff: number, count: number): Float32Array {
  const taps = new Float32Array(count);
  const mid = (count - 1) / 2;
  let sum = 0;
  for (let n = 0; n < count; n++) {
    const x = n - mid;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * n) / (count - 1)) + 0.08 * Math.cos((4 * Math.PI * n) / (count - 1));
    taps[n] = sinc * w;
    sum += taps[n];
  }
  for (let n = 0; n < count; n++) taps[n] /= sum;
  return taps;
}

/** One-shot resample of a whole buffer. */
export function resample(input: Float32Array, fromRate: number, toRate: number): Float32Array {
  return new Resampler(fromRate, toRate).process(input);
}

/** Cuts a stream of samples into fixed frames (20 ms by default), keeping the remainder for the next push. */
export class Framer {
  private buf: Int16Array;
  private len = 0;
  readonly frameSamples: number;

  constructor(sampleRate: number, frameMs = 20) {
    this.frameSamples = Math.round((sampleRate * frameMs) / 1000);
    this.buf = new Int16Array(this.frameSamples * 4);
  }

  push(samples: Int16Array): Int16Array[] {
    if (this.len + samples.length > this.buf.length) {
      const bigger = new Int16Array(Math.max(this.buf.length * 2, this.len + samples.length));
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    this.buf.set(samples, this.len);
    this.len += samples.length;
    const frames: Int16Array[] = [];
    let off = 0;
    while (this.len - off >= this.frameSamples) {
      frames.push(this.buf.slice(off, off + this.frameSamples));
      off += this.frameSamples;
    }
    this.buf.copyWithin(0, off, this.len);
    this.len -= off;
    return frames;
  }

  get pending(): number {
    return this.len;
  }
}
