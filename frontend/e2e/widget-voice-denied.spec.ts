/**
 * The web widget's voice when the visitor's browser does not allow the microphone (the page is not granted it):
 * the widget says so and no voice session is made.
 */
import { expect, test } from '@playwright/test';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config';
import { apiCall, backend, shot } from './helpers';

// A microphone exists (a fake one) but the page is not granted it, and no one answers the prompt: denied.
test.use({
  launchOptions: { executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, '--use-fake-device-for-media-stream'] },
  permissions: [],
});

const FLOW = {
  name: 'E2E widget voice, no microphone',
  nodes: [{ id: 'start', type: 'start' }, { id: 'greet', type: 'say', text: 'Hello.' }, { id: 'bye', type: 'end' }],
  edges: [{ from: 'start', to: 'greet' }, { from: 'greet', to: 'bye' }],
};

test('a visitor who does not allow the microphone is told so, and no session is made', async ({ page, request }) => {
  const { baseURL } = backend();
  const flow = await apiCall<{ id: string }>(request, 'POST', '/v1/flows', { name: FLOW.name, document: FLOW });
  await apiCall(request, 'POST', `/v1/flows/${flow.id}/publish`);
  let key = '';
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><html><body><h1>Shop</h1><script src="${baseURL}/widget.js" data-widget="${key}"></script></body></html>`);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    key = (await apiCall<{ public_key: string }>(request, 'POST', '/v1/widgets',
      { flow_id: flow.id, allowed_origins: [origin], voice: true })).public_key;
    await page.goto(origin);
    await page.getByRole('button', { name: 'Start voice call' }).click();
    await expect(page.locator('#aico-widget .note')).toHaveText('The browser did not allow the microphone.');
    await expect(page.getByRole('button', { name: 'Start voice call' })).toBeVisible();
    await shot(page, '19-widget-voice-no-microphone');
    const sessions = await apiCall<{ items: unknown[] }>(request, 'GET', `/v1/sessions?flow_id=${flow.id}`);
    expect(sessions.items).toEqual([]);
  } finally {
    server.close();
  }
});
