/** A browser voice call: microphone → PCM16 frames over the voice WebSocket; agent audio played through WebAudio. */
import type { ServerMessage, Start } from '../api/voice-messages';
import { Framer, Resampler, bytesToPcm16, floatToPcm16, pcm16ToBytes, pcm16ToFloat } from './pcm';

/** What the server sends on the voice socket (generated from aico/voice_messages.py). */
export type VoiceEvent = ServerMessage;

export type VoiceCallHandlers = {
  onEvent: (ev: VoiceEvent) => void;
  onState: (state: 'connecting' | 'live' | 'ended' | 'error', detail?: string) => void;
};

const SEND_RATE = 16000;

// Runs on the audio thread: hands each block of microphone samples to the page.
const CAPTURE_WORKLET = `
class Capture extends AudioWorkletProcessor {
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch && ch.length) this.port.postMessage(ch.slice(0));
    return true;
  }
}
registerProcessor('aico-capture', Capture);
`;

export class VoiceCall {
  private ws: WebSocket | null = null;
  private ctx: AudioContext | null = null;
  private stream: MediaStream | null = null;
  private node: AudioWorkletNode | null = null;
  private source: MediaStreamAudioSourceNode | null = null;
  private playRate = 16000;
  private playhead = 0;
  private playing = new Set<AudioBufferSourceNode>();
  private framer = new Framer(SEND_RATE, 20);
  private resampler: Resampler | null = null;
  private closed = false;
  framesSent = 0;
  framesReceived = 0;

  constructor(private readonly url: string, private readonly handlers: VoiceCallHandlers) {}

  async start(): Promise<void> {
    this.handlers.onState('connecting');
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.ctx = new AudioContext();
    await this.ctx.resume();
    this.resampler = new Resampler(this.ctx.sampleRate, SEND_RATE);
    const blobUrl = URL.createObjectURL(new Blob([CAPTURE_WORKLET], { type: 'application/javascript' }));
    await this.ctx.audioWorklet.addModule(blobUrl);
    URL.revokeObjectURL(blobUrl);

    const ws = new WebSocket(this.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error('The voice connection could not be opened.'));
    });
    ws.onmessage = (m) => this.onMessage(m);
    ws.onclose = (e) => {
      if (!this.closed) this.handlers.onState('ended', e.reason || undefined);
      this.stop();
    };
    ws.onerror = () => this.handlers.onState('error', 'The voice connection failed.');
    const start: Start = { type: 'start', sample_rate: SEND_RATE };
    ws.send(JSON.stringify(start));

    this.source = this.ctx.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.ctx, 'aico-capture');
    this.node.port.onmessage = (e: MessageEvent<Float32Array>) => this.onMic(e.data);
    this.source.connect(this.node);
    this.handlers.onState('live');
  }

  private onMic(block: Float32Array): void {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.resampler) return;
    const pcm = floatToPcm16(this.resampler.process(block));
    for (const frame of this.framer.push(pcm)) {
      this.ws.send(pcm16ToBytes(frame));
      this.framesSent++;
    }
  }

  private onMessage(m: MessageEvent): void {
    if (typeof m.data === 'string') {
      let ev: VoiceEvent;
      try { ev = JSON.parse(m.data); } catch { return; }
      if (ev.type === 'ready') this.playRate = ev.sample_rate;
      if (ev.type === 'interrupted') this.flushPlayback();
      this.handlers.onEvent(ev);
      if (ev.type === 'end') this.handlers.onState('ended', ev.reason || undefined);
      return;
    }
    this.framesReceived++;
    this.play(bytesToPcm16(m.data as ArrayBuffer));
  }

  private play(samples: Int16Array): void {
    if (!this.ctx || !samples.length) return;
    const buf = this.ctx.createBuffer(1, samples.length, this.playRate);
    buf.getChannelData(0).set(pcm16ToFloat(samples));
    const src = this.ctx.createBufferSource();
    src.buffer = buf;
    src.connect(this.ctx.destination);
    // Queue frames back to back; after a gap, start again a little ahead to absorb jitter.
    const now = this.ctx.currentTime;
    if (this.playhead < now) this.playhead = now + 0.05;
    src.start(this.playhead);
    this.playhead += buf.duration;
    this.playing.add(src);
    src.onended = () => this.playing.delete(src);
  }

  /** Stop agent audio at once (barge-in). */
  flushPlayback(): void {
    for (const s of this.playing) { try { s.stop(); } catch { /* already stopped */ } }
    this.playing.clear();
    this.playhead = 0;
  }

  stop(): void {
    if (this.closed) return;
    this.closed = true;
    this.flushPlayback();
    this.source?.disconnect();
    this.node?.disconnect();
    this.stream?.getTracks().forEach((t) => t.stop());
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
      this.ws.close(1000, 'hang up');
    }
    void this.ctx?.close();
    this.handlers.onState('ended');
  }
}
