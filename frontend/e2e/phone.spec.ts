/**
 * An admin adds a phone number in the dashboard (its carrier, the flow it answers with, the carrier's
 * settings naming a stored secret), sees it listed; then, from the flow's test console, has the flow
 * call out: a premium-rate destination is refused by the toll-fraud guard and says so, an allowed one
 * is placed through the number's carrier: the real `twilio` client asks a loopback fake of Twilio's REST
 * API (started by global-setup) to dial it, signed with the number's account and stored auth token. Both
 * calls are listed under the number's recent calls.
 */
import { expect, test } from '@playwright/test';
import { apiCall, shot, signIn } from './helpers';
import { E2E_TWILIO_ACCOUNT, E2E_TWILIO_TOKEN, type PlacedCall } from './fake-twilio';

const FLOW = {
  name: 'E2E phone greeter',
  nodes: [{ id: 'start', type: 'start' }, { id: 'hi', type: 'say', text: 'Hello from the bakery.' },
    { id: 'hear', type: 'listen' }],
  edges: [{ from: 'start', to: 'hi' }, { from: 'hi', to: 'hear' }],
};

type NumberRow = { id: string; number: string; flow_id: string; provider: string; settings: Record<string, string> };
type CallRow = { direction: string; to_number: string; from_number: string; status: string; failure: { error?: string } | null };

test('phone: add a number, then call out from the test console through the toll-fraud guard', async ({ page, request }) => {
  const flow = await apiCall<{ id: string }>(request, 'POST', '/v1/flows', { name: FLOW.name, document: FLOW });
  await apiCall(request, 'POST', `/v1/flows/${flow.id}/publish`);
  await apiCall(request, 'PUT', '/v1/secrets/TWILIO_AUTH_TOKEN', { value: E2E_TWILIO_TOKEN });
  await apiCall(request, 'PUT', '/v1/org/dialing-policy', { allowed_country_codes: ['1'], allowed_prefixes: [], allow_premium: false });
  const number = `+1555${String(Date.now()).slice(-7)}`;

  await signIn(page, '/phone');
  await expect(page.getByRole('heading', { name: 'Phone numbers', exact: true })).toBeVisible();
  await page.getByLabel('Number', { exact: true }).fill(number);
  await page.getByLabel('Provider').selectOption('twilio');
  await page.getByLabel('Flow').selectOption({ label: FLOW.name });
  await page.getByLabel('Carrier settings').fill(`account_sid=${E2E_TWILIO_ACCOUNT}\nauth_token_secret=TWILIO_AUTH_TOKEN`);
  await page.getByRole('button', { name: 'Add number' }).click();

  const row = page.getByTestId('phone-numbers').getByRole('row', { name: new RegExp(`\\${number}`) });
  await expect(row).toContainText('twilio');
  await expect(row).toContainText(FLOW.name);
  await expect(row).toContainText('auth_token_secret=TWILIO_AUTH_TOKEN');
  const stored = (await apiCall<{ items: NumberRow[] }>(request, 'GET', '/v1/phone-numbers')).items.find((n) => n.number === number);
  expect(stored?.flow_id).toBe(flow.id);
  expect(stored?.settings.auth_token_secret).toBe('TWILIO_AUTH_TOKEN');

  await page.goto(page.url().replace(/#.*$/, `#/flows/${flow.id}/test`));
  await expect(page.getByRole('heading', { name: 'Phone call' })).toBeVisible();
  await page.getByLabel('Call from').selectOption(number);
  await page.getByLabel('Call to').fill('+19005551234');
  await page.getByRole('button', { name: 'Call', exact: true }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'The number cannot be dialled' })).toContainText('premium-rate');

  await page.getByLabel('Call to').fill('+12125550123');
  await page.getByRole('button', { name: 'Call', exact: true }).click();
  await expect(page.getByRole('button', { name: 'Call', exact: true })).toBeEnabled({ timeout: 60_000 });
  await shot(page, 'phone-console-call');

  await page.goto(page.url().replace(/#.*$/, '#/phone'));
  const calls = page.getByTestId('phone-calls');
  await expect(calls.getByRole('row', { name: /\+19005551234/ })).toContainText('refused');
  await expect(calls.getByRole('row', { name: /\+12125550123/ })).toContainText('outbound');
  const recorded = (await apiCall<{ items: CallRow[] }>(request, 'GET', '/v1/calls')).items.filter((c) => c.from_number === number);
  expect(recorded.map((c) => c.to_number).sort()).toEqual(['+12125550123', '+19005551234']);
  expect(recorded.find((c) => c.to_number === '+19005551234')?.failure?.error).toBe('destination_refused');
  const twilio = process.env.AICO_E2E_TWILIO_URL;
  if (twilio) { // global-setup started the fake carrier (not when the run reuses a backend already up)
    const placed = (await (await request.get(`${twilio}/_placed`)).json()) as PlacedCall[];
    const ours = placed.filter((p) => p.form.From === number);
    expect(ours.map((p) => [p.form.To, p.authorized, p.account])).toEqual([['+12125550123', true, E2E_TWILIO_ACCOUNT]]);
    expect(ours[0].form.Url).toMatch(/\/v1\/channels\/twilio\/voice$/);
    const allowed = recorded.find((c) => c.to_number === '+12125550123');
    expect(allowed?.failure ?? null).toBeNull();
    await expect(calls.getByRole('row', { name: /\+12125550123/ })).not.toContainText('failed');
  }
  await shot(page, 'phone-numbers');
});
