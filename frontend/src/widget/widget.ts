/**
 * AICO web widget: <script src="https://aico.example/widget.js" data-widget="wk_…"></script>
 * A launcher button that opens a chat with the widget's flow and, when the widget has voice, a Talk button that
 * calls it (microphone → the voice WebSocket, the agent's audio played, the live transcript of both sides).
 * Everything lives in a shadow root, so the host page's styles and scripts do not reach it; theme it with CSS
 * variables on the host element `aico-widget`: --aico-accent, --aico-bg, --aico-fg, --aico-radius, --aico-font.
 * `data-visitor-token` (signed by the host site's backend with the widget's identity secret) names the visitor,
 * so the conversation is that user's. Built into dist/widget.js by `npm run build` (vite.widget.config.ts).
 */
import type { VoiceCall } from '../voice/voiceCall';
import { WIDGET_HTML } from './styles';
import { HttpError, WidgetApi, type VisitorCall, type VisitorSession } from './widgetApi';
import { startCall } from './widgetVoice';

function mount(script: HTMLScriptElement, key: string): void {
  const api = new WidgetApi(`${new URL(script.src).origin}/v1/widget/${encodeURIComponent(key)}`);
  const visitorToken = script.dataset.visitorToken;
  const visitor = visitorToken ? { visitor_token: visitorToken } : {};
  // A tag of its own: the host page's rules for div, button… do not match the widget's element.
  const host = document.createElement('aico-widget');
  host.id = 'aico-widget';
  const root = host.attachShadow({ mode: 'open' });
  root.innerHTML = WIDGET_HTML;
  const $ = <T extends Element>(selector: string) => root.querySelector(selector) as T;
  const panel = $<HTMLElement>('.panel');
  const log = $<HTMLElement>('.log');
  const form = $<HTMLFormElement>('form');
  const input = $<HTMLInputElement>('input');
  const talk = $<HTMLButtonElement>('.talk');
  const status = $<HTMLElement>('.status');

  const add = (text: string, who: 'agent' | 'visitor'): HTMLElement => {
    const p = document.createElement('div');
    p.className = `msg ${who}`;
    p.textContent = text;
    log.appendChild(p);
    log.scrollTop = log.scrollHeight;
    return p;
  };
  const note = (text: string): void => {
    const p = document.createElement('div');
    p.className = 'note';
    p.textContent = text;
    log.appendChild(p);
  };

  // --- chat ---------------------------------------------------------------------------------
  let session: VisitorSession | null = null;
  let starting: Promise<void> | null = null;
  const start = (): Promise<void> => {
    starting ??= api.post<VisitorSession>('/sessions', visitor).then((s) => {
      session = s;
      s.messages.forEach((m) => add(m.text, 'agent'));
    }).catch(() => {
      starting = null;
      note('Chat is not available on this page.');
    });
    return starting;
  };
  $<HTMLButtonElement>('.launcher').addEventListener('click', () => {
    panel.hidden = !panel.hidden;
    if (!panel.hidden) { void start(); input.focus(); }
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    add(text, 'visitor');
    const bubbles: Record<string, HTMLElement> = {};
    start().then(() => {
      if (!session) return;
      return api.stream(`/sessions/${session.session_id}/messages?stream=true`, { visitor_token: session.visitor_token, text },
        (chunk) => {
          bubbles[chunk.message] ??= add('', 'agent');
          bubbles[chunk.message].textContent += chunk.text;
          log.scrollTop = log.scrollHeight;
        },
        () => note('The reply failed.'));
    }).catch(() => note('The message could not be sent.'));
  });

  // --- voice (offered only when the widget has it) ---------------------------------------------
  let call: VoiceCall | null = null;
  let calling = false;
  let attempt = 0; // a call that connects after its visitor hung up (or called again) is dropped
  const idle = (): void => {
    call = null;
    calling = false;
    attempt++;
    talk.classList.remove('live');
    talk.textContent = 'Talk';
    talk.setAttribute('aria-label', 'Start voice call');
  };
  talk.addEventListener('click', () => {
    if (calling) { call?.stop(); idle(); return; }
    calling = true;
    panel.hidden = false;
    talk.classList.add('live');
    talk.textContent = 'Hang up';
    talk.setAttribute('aria-label', 'Hang up');
    status.textContent = 'Connecting…';
    const mine = ++attempt;
    // The microphone first: a visitor who does not allow it starts no session.
    navigator.mediaDevices.getUserMedia({ audio: true })
      .then((mic) => { mic.getTracks().forEach((t) => t.stop()); return api.post<VisitorCall>('/voice', visitor); })
      .then((c) => startCall(c.voice.url, {
        log, note, ended: () => { if (mine === attempt) idle(); }, status: (text) => { status.textContent = text; },
      }))
      .then((c) => { if (mine === attempt) call = c; else c.stop(); })
      .catch((e: unknown) => {
        if (mine !== attempt) return;
        idle();
        status.textContent = '';
        if (e instanceof DOMException && e.name === 'NotAllowedError') note('The browser did not allow the microphone.');
        else if (e instanceof DOMException && e.name === 'NotFoundError') note('No microphone was found.');
        else if (e instanceof HttpError && e.status === 429) note('Too many calls just now: try again in a minute.');
        else note('Voice is not available on this page.');
      });
  });
  api.config().then((c) => { talk.hidden = !c.voice; }).catch(() => { /* not on the allow-list: chat says so */ });

  (document.body || document.documentElement).appendChild(host);
}

const script = document.currentScript as HTMLScriptElement | null;
if (script?.dataset.widget) mount(script, script.dataset.widget);
