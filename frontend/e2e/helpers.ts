/** Shared steps for the e2e tests: sign in with the dev token, call the API, save screenshots. */
import { expect, type APIRequestContext, type Page } from '@playwright/test';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), 'screenshots');

export function backend(): { baseURL: string; token: string } {
  const baseURL = process.env.AICO_E2E_BASE_URL;
  const token = process.env.AICO_E2E_TOKEN;
  if (!baseURL || !token) throw new Error('the e2e global setup did not start the backend');
  return { baseURL, token };
}

/** Open the one-time sign-in link, as `aico up` prints it, and check the token left the address bar. */
export async function signIn(page: Page, path = '/flows'): Promise<void> {
  const { baseURL, token } = backend();
  await page.goto(`${baseURL}/#token=${token}`);
  await expect(page.getByRole('link', { name: 'Flows' })).toBeVisible();
  expect(page.url()).not.toContain(token);
  if (path !== '/flows') await page.goto(`${baseURL}/#${path}`);
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

export async function apiCall<T>(request: APIRequestContext, method: string, path: string, data?: unknown): Promise<T> {
  const { baseURL, token } = backend();
  const r = await request.fetch(`${baseURL}${path}`, { method, data, headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok()) throw new Error(`${method} ${path} → ${r.status()} ${await r.text()}`);
  return (r.status() === 204 ? undefined : await r.json()) as T;
}
