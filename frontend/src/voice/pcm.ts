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
 * Downsampling first averages over the ratio (a box filter) to limit aliasing.
 */
export class Resampler {
  private readonly ratio: number;
  private pos = 0; // position of the next output sample, in input samples, relative to the start of `prev`
  private prev: number | null = null;
  private tail = new Float32Array(0); // last raw samples, so the anti-alias filter runs across chunk edges

  constructor(readonly fromRate: number, readonly toRate: number) {
    if (fromRate <= 0 || toRate <= 0) throw new Error('sample rates must be positive');
    this.ratio = fromRate / toRate;
  }

  process(input: Float32Array): Float32Array {
    if (this.fromRate === this.toRate) return input.slice();
    const src = this.ratio > 1 ? this.filter(input, Math.floor(this.ratio)) : input;
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

  private filter(input: Float32Array, width: number): Float32Array {
    const joined = new Float32Array(this.tail.length + input.length);
    joined.set(this.tail);
    joined.set(input, this.tail.length);
    const filtered = boxFilter(joined, width).subarray(this.tail.length);
    this.tail = joined.slice(Math.max(0, joined.length - (width - 1)));
    return filtered;
  }
}

function boxFilter(input: Float32Array, width: number): Float32Array {
  if (width <= 1) return input;
  const out = new Float32Array(input.length);
  let acc = 0;
  for (let i = 0; i < input.length; i++) {
    acc += input[i];
    if (i >= width) acc -= input[i - width];
    out[i] = acc / Math.min(i + 1, width);
  }
  return out;
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
