/**
 * The web widget's voice on someone else's site: a page served from another loopback origin embeds
 * `/widget.js` for a widget with voice on; the visitor presses Talk, Chromium's fake microphone plays
 * `fixtures/caller.wav` ("My name is Ada." every ≈5 s), and the live transcript of both sides appears in the
 * widget. On an origin not in the allow-list there is no Talk button, the HTTP endpoint answers 403, and the
 * voice WebSocket, opened there with a voice URL made for the allowed page, is closed with 1008 before anything
 * starts.
 */
import { expect, test, type Request as PwRequest } from '@playwright/test';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config';
import { apiCall, backend, shot } from './helpers';

const wav = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'caller.wav');

test.use({
  launchOptions: {
    executablePath: CHROMIUM,
    args: [
      ...CHROMIUM_ARGS,
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  },
  permissions: ['microphone'],
});

const FLOW = {
  name: 'E2E widget voice',
  // The caller repeats itself every ≈5 s: wait long enough for an utterance after the greeting.
  variables: { voice_no_input_s: { type: 'number', default: 20 } },
  nodes: [
    { id: 'start', type: 'start' },
    // Not interruptible: the looping caller must not cut the greeting short.
    { id: 'greet', type: 'say', text: 'Widget voice test. What is your name?', interruptible: false },
    { id: 'hear', type: 'listen', into: 'heard' },
    { id: 'answer', type: 'say', text: 'You said {{ heard }}. Goodbye.' },
    { id: 'bye', type: 'end' },
  ],
  edges: [
    { from: 'start', to: 'greet' }, { from: 'greet', to: 'hear' }, { from: 'hear', to: 'answer' }, { from: 'answer', to: 'bye' },
  ],
};

/** A host site on its own loopback origin, serving `html()` (read per request: the widget key comes later). */
async function site(html: () => string): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(html()); });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

type Transcript = { transcript: { role: string; text: string }[]; channel: string; status: string };

test('a visitor talks to the flow through the widget; another site is refused (HTTP and WebSocket)', async ({ page, request }) => {
  const { baseURL } = backend();
  const flow = await apiCall<{ id: string }>(request, 'POST', '/v1/flows', { name: FLOW.name, document: FLOW });
  await apiCall(request, 'POST', `/v1/flows/${flow.id}/publish`);
  let key = '';
  const hostPage = () => `<!doctype html><html><head><style>button, div { color: red !important; }</style></head>
    <body><h1>Shop</h1><script src="${baseURL}/widget.js" data-widget="${key}"></script></body></html>`;
  const allowed = await site(hostPage);
  const other = await site(hostPage);
  try {
    key = (await apiCall<{ public_key: string }>(request, 'POST', '/v1/widgets',
      { flow_id: flow.id, allowed_origins: [allowed.origin], voice: true })).public_key;

    await page.goto(allowed.origin);
    const started = page.waitForResponse((r) => r.url().endsWith(`/v1/widget/${key}/voice`));
    await page.getByRole('button', { name: 'Start voice call' }).click();
    const sessionId = ((await (await started).json()) as { session_id: string }).session_id;
    const widget = page.locator('#aico-widget');
    await expect(widget.locator('.msg[data-role="agent"]').first()).toContainText('Widget voice test', { timeout: 60_000 });
    await expect(widget.locator('.msg[data-role="user"]').first()).toContainText(/my name is/i, { timeout: 90_000 });
    await expect(widget.locator('.msg[data-role="agent"]').nth(1)).toContainText(/You said my name is/i, { timeout: 60_000 });
    // The flow ends the call: the button offers a new one.
    await expect(widget.getByRole('button', { name: 'Start voice call' })).toBeVisible({ timeout: 60_000 });
    await expect(widget.locator('.status')).toHaveText('Call ended');
    await shot(page, '17-widget-voice');
    // What was stored: the widget's voice session, with what both sides said.
    const stored = await apiCall<Transcript>(request, 'GET', `/v1/sessions/${sessionId}`);
    expect(stored.channel).toBe('voice');
    expect(stored.transcript.map((t) => t.text).join(' ')).toMatch(/Widget voice test[\s\S]*my name is/i);

    // Another site: the widget offers no voice there, and the HTTP endpoint refuses it.
    // (Chromium reports the refused config request as failed: the 403 carries no CORS header.)
    const asked = new Promise<void>((done) => {
      const seen = (r: PwRequest) => { if (r.url().endsWith(`/v1/widget/${key}`)) done(); };
      page.on('requestfailed', seen);
      page.on('requestfinished', seen);
    });
    await page.goto(other.origin);
    await asked;
    await expect(page.getByRole('button', { name: 'Open chat' })).toBeVisible();
    await expect(page.getByRole('button', { name: 'Start voice call' })).toBeHidden();
    await page.getByRole('button', { name: 'Open chat' }).click();
    await expect(page.locator('#aico-widget .note')).toHaveText('Chat is not available on this page.');
    for (const [method, path] of [['GET', ''], ['POST', '/voice']]) {
      const refused = await request.fetch(`${baseURL}/v1/widget/${key}${path}`, { method, data: method === 'POST' ? {} : undefined, headers: { Origin: other.origin } });
      expect(refused.status()).toBe(403);
    }
    // A voice URL made for the allowed page, opened from the other page: closed with 1008, nothing starts.
    const made = await request.post(`${baseURL}/v1/widget/${key}/voice`, { data: {}, headers: { Origin: allowed.origin } });
    expect(made.status()).toBe(201);
    const call = (await made.json()) as { session_id: string; voice: { url: string } };
    const closed = await page.evaluate((url) => new Promise<{ code: number; messages: string[] }>((resolve) => {
      const messages: string[] = [];
      const ws = new WebSocket(url);
      ws.onopen = () => ws.send(JSON.stringify({ type: 'start', sample_rate: 16000 }));
      ws.onmessage = (m) => messages.push(String(m.data));
      ws.onclose = (e) => resolve({ code: e.code, messages });
    }), call.voice.url);
    expect(closed.code).toBe(1008);
    expect(closed.messages.map((m) => JSON.parse(m).code)).toEqual(['origin_refused']);
    const untouched = await apiCall<Transcript>(request, 'GET', `/v1/sessions/${call.session_id}`);
    expect([untouched.status, untouched.transcript]).toEqual(['active', []]);
    await shot(page, '18-widget-voice-refused');
  } finally {
    allowed.server.close();
    other.server.close();
  }
});
