/**
 * An integrator's story in the dashboard: create a scoped API key (shown once), register a webhook to a
 * receiver on loopback (its secret shown once), start a session with the key, watch the signed delivery
 * arrive and appear in the deliveries table, redeliver it, and revoke the key.
 */
import { expect, test } from '@playwright/test';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { apiCall, backend, shot, signIn } from './helpers';

const ECHO = {
  name: 'E2E webhook echo',
  nodes: [{ id: 'start', type: 'start' }, { id: 'hear', type: 'listen', into: 'said' },
    { id: 'echo', type: 'say', text: 'You said {{ said }}' }],
  edges: [{ from: 'start', to: 'hear' }, { from: 'hear', to: 'echo' }, { from: 'echo', to: 'hear' }],
};

type Received = { headers: IncomingHttpHeaders; body: string };

/** Standard Webhooks: v1 = base64 HMAC-SHA256 of `${id}.${timestamp}.${body}` keyed by the secret after `whsec_`. */
function verifies(secret: string, r: Received): boolean {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${r.headers['webhook-id']}.${r.headers['webhook-timestamp']}.${r.body}`).digest('base64');
  return String(r.headers['webhook-signature']).split(' ').includes(`v1,${expected}`);
}

test('integrations: a scoped key, a signed webhook delivery, redeliver, revoke', async ({ page, request }) => {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => { received.push({ headers: req.headers, body }); res.writeHead(204); res.end(); });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  const port = (server.address() as AddressInfo).port;
  try {
    await apiCall(request, 'PUT', '/v1/org/egress-allowlist', { hosts: ['127.0.0.1'] });
    const flow = await apiCall<{ id: string }>(request, 'POST', '/v1/flows', { name: ECHO.name, document: ECHO });
    await apiCall(request, 'POST', `/v1/flows/${flow.id}/publish`);

    await signIn(page, '/integrations');
    await expect(page.getByRole('heading', { name: 'Integrations' })).toBeVisible();
    await page.getByLabel('Key name').fill('e2e trigger');
    await page.getByLabel('Key role').selectOption('editor');
    await page.getByLabel('Key scopes').getByLabel('sessions:write').check();
    await page.getByRole('button', { name: 'Create key' }).click();
    const key = (await page.getByTestId('new-key').locator('code').textContent())!.trim();
    expect(key).toMatch(/^aico_/);
    await expect(page.getByTestId('keys-table')).toContainText('e2e trigger');
    await expect(page.getByTestId('keys-table')).toContainText('sessions:write');

    await page.getByLabel('Webhook URL').fill(`http://127.0.0.1:${port}/hooks/aico`);
    await page.getByRole('button', { name: 'Add webhook' }).click();
    const secret = (await page.getByTestId('new-secret').locator('code').textContent())!.trim();
    expect(secret).toMatch(/^whsec_/);

    // The key starts a session (its scope) but may not read flows (not its scope).
    const { baseURL } = backend();
    const auth = { Authorization: `Bearer ${key}` };
    const started = await request.post(`${baseURL}/v1/flows/${flow.id}/sessions`, { data: {}, headers: auth });
    expect(started.status()).toBe(201);
    expect((await request.get(`${baseURL}/v1/flows`, { headers: auth })).status()).toBe(403);

    await expect.poll(() => received.length, { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
    expect(verifies(secret, received[0])).toBe(true);
    const event = JSON.parse(received[0].body);
    expect(event.type).toBe('session.started');
    expect(event.data.session_id).toBe((await started.json()).id);

    const row = page.getByTestId('delivery-session.started');
    await expect(row).toContainText('delivered');
    await expect(row).toContainText('204');
    await shot(page, '14-integrations');
    await row.getByRole('button', { name: 'Redeliver' }).click();
    await expect.poll(() => received.length, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    expect(received[1].headers['webhook-id']).toBe(received[0].headers['webhook-id']);
    await expect(row).toContainText('204 (', { timeout: 20_000 });
    await expect.poll(async () => ((await row.textContent()) ?? '').split('204').length - 1, { timeout: 20_000 }).toBe(2);

    page.once('dialog', (d) => void d.accept());
    await page.getByTestId('keys-table').getByRole('row', { name: /e2e trigger/ }).getByRole('button', { name: 'Revoke' }).click();
    await expect(page.getByTestId('keys-table')).not.toContainText('e2e trigger');
    expect((await request.post(`${baseURL}/v1/flows/${flow.id}/sessions`, { data: {}, headers: auth })).status()).toBe(401);
  } finally {
    server.close();
  }
});
