/**
 * The web widget on someone else's site: a page served from another loopback origin embeds
 * `<script src="…/widget.js" data-widget="wk_…">`, opens the launcher and chats with the flow (the page's own
 * styles do not reach the widget's shadow root); the same page on an origin not in the allow-list is refused.
 */
import { expect, test } from '@playwright/test';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { apiCall, backend, shot } from './helpers';

const ECHO = {
  name: 'E2E widget echo',
  nodes: [{ id: 'start', type: 'start' }, { id: 'hi', type: 'say', text: 'Hello! Ask me anything.' },
    { id: 'hear', type: 'listen', into: 'said' }, { id: 'echo', type: 'say', text: 'You said {{ said }}' }],
  edges: [{ from: 'start', to: 'hi' }, { from: 'hi', to: 'hear' }, { from: 'hear', to: 'echo' }, { from: 'echo', to: 'hear' }],
};

/** A host site on its own loopback origin, serving `html()` (read per request: the widget key comes later). */
async function site(html: () => string): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(html()); });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

test('the widget chats on an allowed site and is refused on another', async ({ page, request }) => {
  const { baseURL } = backend();
  const flow = await apiCall<{ id: string }>(request, 'POST', '/v1/flows', { name: ECHO.name, document: ECHO });
  await apiCall(request, 'POST', `/v1/flows/${flow.id}/publish`);
  let key = '';
  // The host page's own styles: a widget they reached would turn red and huge.
  const hostPage = () => `<!doctype html><html><head><style>button, div { color: red !important; font-size: 40px !important; }</style></head>
    <body><h1>Shop</h1><script src="${baseURL}/widget.js" data-widget="${key}"></script></body></html>`;
  const allowed = await site(hostPage);
  const other = await site(hostPage);
  try {
    key = (await apiCall<{ public_key: string }>(request, 'POST', '/v1/widgets', { flow_id: flow.id, allowed_origins: [allowed.origin] })).public_key;

    await page.goto(allowed.origin);
    await page.getByRole('button', { name: 'Open chat' }).click();
    await expect(page.locator('#aico-widget .msg.agent').first()).toHaveText('Hello! Ask me anything.');
    await page.getByLabel('Message').fill('where is my order?');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect(page.locator('#aico-widget .msg.agent').nth(1)).toHaveText('You said where is my order?');
    await expect(page.locator('#aico-widget .msg.visitor')).toHaveText('where is my order?');
    const color = await page.locator('#aico-widget .msg.visitor').evaluate((el) => getComputedStyle(el).color);
    expect(color).toBe('rgb(255, 255, 255)'); // the page's red did not reach the shadow root
    expect(await page.locator('#aico-widget .msg.agent').first().evaluate((el) => getComputedStyle(el).fontSize)).toBe('15px');
    await shot(page, '15-widget-allowed');

    await page.goto(other.origin);
    await page.getByRole('button', { name: 'Open chat' }).click();
    await expect(page.locator('#aico-widget .note')).toHaveText('Chat is not available on this page.');
    await expect(page.locator('#aico-widget .msg.agent')).toHaveCount(0);
    await shot(page, '16-widget-refused');
  } finally {
    allowed.server.close();
    other.server.close();
  }
});
