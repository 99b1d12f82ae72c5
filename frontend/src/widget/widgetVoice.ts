/**
 * The widget's voice call: the microphone to the voice WebSocket and the agent's audio back (the dashboard's
 * VoiceCall: AudioWorklet capture, PCM16 at 16 kHz in 20 ms frames), with the live transcript of both sides
 * drawn into the widget's log.
 */
import { appendAgentDelta, applyTranscript, type LiveLine } from '../voice/transcript';
import { VoiceCall, type VoiceEvent } from '../voice/voiceCall';

export type CallView = {
  log: HTMLElement;
  status: (text: string) => void;
  note: (text: string) => void;
  ended: () => void;
};

/** Keeps the transcript's lines and their bubbles in step: a line only changes in place or is appended. */
export class TranscriptView {
  private lines: LiveLine[] = [];
  private bubbles: HTMLElement[] = [];

  constructor(private readonly log: HTMLElement) {}

  apply(ev: VoiceEvent): void {
    if (ev.type === 'transcript') {
      this.lines = applyTranscript(this.lines, ev);
    } else if (ev.type === 'agent_text' && !ev.final) {
      // Streamed pieces of an LLM reply; the whole sentence comes again as a final `transcript`.
      this.lines = appendAgentDelta(this.lines, ev.text);
    } else {
      return;
    }
    this.lines.forEach((line, i) => {
      let bubble = this.bubbles[i];
      if (!bubble) {
        bubble = this.bubbles[i] = document.createElement('div');
        this.log.appendChild(bubble);
      }
      bubble.className = `msg ${line.role === 'user' ? 'visitor' : 'agent'}${line.final ? '' : ' interim'}`;
      bubble.dataset.role = line.role;
      bubble.textContent = line.text;
    });
    this.log.scrollTop = this.log.scrollHeight;
  }
}

/** Starts a call on `url` (the single-use voice URL); resolves once the microphone streams, rejects if it cannot. */
export async function startCall(url: string, view: CallView): Promise<VoiceCall> {
  const transcript = new TranscriptView(view.log);
  let ended = false;
  const call = new VoiceCall(url, {
    onEvent: (ev) => {
      transcript.apply(ev);
      if (ev.type === 'agent_speech_started') view.status('Speaking…');
      else if (ev.type === 'agent_speech_ended' || ev.type === 'ready') view.status('Listening…');
      else if (ev.type === 'error') {
        view.note(ev.code === 'origin_refused' ? 'Voice is not available on this page.' : `Voice: ${ev.message || ev.code}`);
      }
    },
    onState: (state) => {
      if (state === 'connecting') view.status('Connecting…');
      if ((state === 'ended' || state === 'error') && !ended) {
        ended = true;
        view.status('Call ended');
        view.ended();
      }
    },
  });
  try {
    await call.start();
  } catch (e) {
    ended = true; // the caller says why: this is not a call that ended
    call.stop(); // lets go of the microphone
    throw e;
  }
  return call;
}
