/**
 * An editor builds a knowledge base in the dashboard: creates it, uploads a Markdown document, watches it become
 * ready, finds the answer with the search box, and the API agrees with what the page shows; then the document and
 * the knowledge base are deleted. A user's memory page shows what is remembered and erases it.
 */
import { expect, test } from '@playwright/test';
import { apiCall, shot, signIn } from './helpers';

const HANDBOOK = `# Harbour lighthouse handbook

## Keepers

The last keeper of the harbour lighthouse was Marguerite Olsen, who retired in 1961.

## Visiting

The tower is open to visitors on Saturdays from ten to four. Tickets cost three euros.
`;

type Kb = { id: string; name: string; documents: number };
type KbDetail = Kb & { items: { id: string; title: string; status: string; chunk_count: number }[] };

test('knowledge: create a base, upload a document, see it ready, search finds it, delete', async ({ page, request }) => {
  const name = `E2E handbook ${Date.now()}`;
  await signIn(page, '/knowledge');
  await expect(page.getByRole('heading', { level: 1, name: 'Knowledge bases' })).toBeVisible();
  await page.getByLabel('Knowledge base name').fill(name);
  await page.getByLabel('Description').fill('what callers ask about the lighthouse');
  await page.getByRole('button', { name: 'Create' }).click();
  await expect(page.getByRole('heading', { name: `Documents of ${name}` })).toBeVisible();

  await page.getByLabel('Upload a document').setInputFiles({
    name: 'lighthouse.md', mimeType: 'text/markdown', buffer: Buffer.from(HANDBOOK),
  });
  const row = page.getByTestId('knowledge-documents').getByRole('row', { name: /lighthouse\.md/ });
  await expect(row).toContainText(/ready · \d+ chunks?/, { timeout: 120_000 });
  await shot(page, 'knowledge-ready');

  const kb = (await apiCall<{ items: Kb[] }>(request, 'GET', '/v1/knowledge-bases')).items.find((b) => b.name === name);
  expect(kb).toBeTruthy();
  const detail = await apiCall<KbDetail>(request, 'GET', `/v1/knowledge-bases/${kb!.id}`);
  expect(detail.items.map((d) => [d.title, d.status])).toEqual([['lighthouse.md', 'ready']]);
  expect(detail.items[0].chunk_count).toBeGreaterThan(0);

  await page.getByLabel('Search query').fill('Who was the last keeper?');
  await page.getByRole('button', { name: 'Search' }).click();
  const first = page.getByTestId('search-results').getByRole('listitem').first();
  await expect(first).toContainText('Marguerite Olsen');
  await expect(first).toContainText('lighthouse.md');
  await shot(page, 'knowledge-search');

  page.once('dialog', (d) => void d.accept());
  await row.getByRole('button', { name: 'Delete' }).click();
  await expect(page.getByText('No documents yet.')).toBeVisible();
  expect((await apiCall<KbDetail>(request, 'GET', `/v1/knowledge-bases/${kb!.id}`)).items).toEqual([]);

  page.once('dialog', (d) => void d.accept());
  await page.getByTestId('knowledge-bases').getByRole('row', { name: new RegExp(name) }).getByRole('button', { name: 'Delete' }).click();
  await expect(page.getByTestId('knowledge-bases').getByRole('row', { name: new RegExp(name) })).toHaveCount(0);
  expect((await apiCall<{ items: Kb[] }>(request, 'GET', '/v1/knowledge-bases')).items.find((b) => b.name === name)).toBeUndefined();
});

test('user memory: see what is remembered of a user and erase it', async ({ page, request }) => {
  const user = `e2e-user-${Date.now()}`;
  const flow = await apiCall<{ id: string }>(request, 'POST', '/v1/flows', {
    name: 'E2E remembers', document: {
      name: 'E2E remembers',
      nodes: [{ id: 'start', type: 'start' }, { id: 'hear', type: 'listen' },
        { id: 'answer', type: 'llm', instructions: 'Be brief.', max_tokens: 4, memory: { episodic: 2 } }],
      edges: [{ from: 'start', to: 'hear' }, { from: 'hear', to: 'answer' }, { from: 'answer', to: 'hear' }],
    },
  });
  await apiCall(request, 'POST', `/v1/flows/${flow.id}/publish`);
  const session = await apiCall<{ id: string }>(request, 'POST', `/v1/flows/${flow.id}/sessions`, { channel: 'chat', user: { id: user } });
  await apiCall(request, 'POST', `/v1/sessions/${session.id}/messages`, { text: 'My dog is called Biscuit.' });
  await expect.poll(async () => (await apiCall<{ total: number }>(request, 'GET', `/v1/users/${user}/memory`)).total,
    { timeout: 60_000 }).toBe(1);

  await signIn(page, '/memory');
  await page.getByLabel('User id').fill(user);
  await page.getByRole('button', { name: 'Show memory' }).click();
  await expect(page.getByTestId('user-episodes')).toContainText('My dog is called Biscuit.');
  await shot(page, 'user-memory');

  page.once('dialog', (d) => void d.accept());
  await page.getByRole('button', { name: 'Erase all memory of this user' }).click();
  await expect(page.getByRole('status')).toContainText('Erased: 1 remembered turns');
  await expect(page.getByText('Nothing remembered.')).toBeVisible();
  expect((await apiCall<{ total: number }>(request, 'GET', `/v1/users/${user}/memory`)).total).toBe(0);
});
