/**
 * An admin connects a WhatsApp number in the dashboard: picks the flow, names the stored secrets,
 * sees the number listed, turns on voice replies, Meta's verification handshake succeeds with the
 * token given, and the number is removed.
 */
import { expect, test } from '@playwright/test';
import { apiCall, backend, shot, signIn } from './helpers';

const ECHO = {
  name: 'E2E WhatsApp echo',
  nodes: [{ id: 'start', type: 'start' }, { id: 'hear', type: 'listen', into: 'said' },
    { id: 'echo', type: 'say', text: 'You said {{ said }}' }],
  edges: [{ from: 'start', to: 'hear' }, { from: 'hear', to: 'echo' }, { from: 'echo', to: 'hear' }],
};

type NumberRow = { id: string; phone_number_id: string; flow_id: string; voice_replies: boolean };

test('whatsapp: add a number, turn on voice replies, verify the webhook, remove it', async ({ page, request }) => {
  const flow = await apiCall<{ id: string }>(request, 'POST', '/v1/flows', { name: ECHO.name, document: ECHO });
  await apiCall(request, 'POST', `/v1/flows/${flow.id}/publish`);
  await apiCall(request, 'PUT', '/v1/secrets/META_APP_SECRET', { value: 'e2e-app-secret' });
  await apiCall(request, 'PUT', '/v1/secrets/META_ACCESS_TOKEN', { value: 'e2e-access-token' });
  const phoneId = `1065${Date.now()}`;
  const verifyToken = `verify-${Date.now()}`;

  await signIn(page, '/whatsapp');
  await expect(page.getByRole('heading', { name: 'WhatsApp', exact: true })).toBeVisible();
  await page.getByLabel('Phone number id').fill(phoneId);
  await page.getByLabel('Display number').fill('+1 555 0100');
  await page.getByLabel('Flow').selectOption({ label: ECHO.name });
  await page.getByLabel('Verify token').fill(verifyToken);
  await page.getByRole('button', { name: 'Add number' }).click();

  const row = page.getByTestId('whatsapp-numbers').getByRole('row', { name: new RegExp(phoneId) });
  await expect(row).toContainText('+1 555 0100');
  await expect(row).toContainText(ECHO.name);
  await expect(row).toContainText('META_APP_SECRET, META_ACCESS_TOKEN');
  await expect(row).toContainText('ok');
  await expect(page.getByText(verifyToken)).toHaveCount(0);
  const stored = (await apiCall<{ items: NumberRow[] }>(request, 'GET', '/v1/channels/whatsapp/numbers'))
    .items.find((n) => n.phone_number_id === phoneId);
  expect(stored?.flow_id).toBe(flow.id);
  expect(stored?.voice_replies).toBe(false);

  await row.getByRole('checkbox', { name: /Voice replies/ }).click(); // saved, then shown from the server
  await expect(row.getByRole('checkbox', { name: /Voice replies/ })).toBeChecked();
  await expect.poll(async () => (await apiCall<{ items: NumberRow[] }>(request, 'GET', '/v1/channels/whatsapp/numbers'))
    .items.find((n) => n.phone_number_id === phoneId)?.voice_replies).toBe(true);
  await shot(page, 'whatsapp-numbers');

  // Meta's handshake with the token given in the form (no bearer token: Meta has none).
  const { baseURL } = backend();
  const ok = await request.get(`${baseURL}/v1/channels/whatsapp/webhook?hub.mode=subscribe&hub.verify_token=${verifyToken}&hub.challenge=4242`);
  expect(ok.status()).toBe(200);
  expect(await ok.text()).toBe('4242');
  const wrong = await request.get(`${baseURL}/v1/channels/whatsapp/webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=4242`);
  expect(wrong.status()).toBe(403);

  page.once('dialog', (d) => void d.accept());
  await row.getByRole('button', { name: 'Remove' }).click();
  await expect(page.getByTestId('whatsapp-numbers').getByRole('row', { name: new RegExp(phoneId) })).toHaveCount(0);
  const left = await apiCall<{ items: NumberRow[] }>(request, 'GET', '/v1/channels/whatsapp/numbers');
  expect(left.items.some((n) => n.phone_number_id === phoneId)).toBe(false);
});
