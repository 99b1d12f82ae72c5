/**
 * The dashboard user's story, in a real browser against the real backend: build a flow by dragging nodes
 * from the palette and connecting them, see a validation error on the node it concerns, undo/redo, publish,
 * compare versions, chat with the flow in the test console, and find the session in monitoring.
 */
import { expect, test, type Locator, type Page } from '@playwright/test';
import { apiCall, backend, shot, signIn } from './helpers';

async function dropNode(page: Page, type: string, x: number, y: number): Promise<void> {
  await page.getByTestId(`palette-${type}`).dragTo(page.getByTestId('canvas'), { targetPosition: { x, y } });
}

async function connect(page: Page, from: string, to: string): Promise<void> {
  const src = await page.getByTestId(`out-${from}`).boundingBox();
  const dst = await page.getByTestId(`in-${to}`).boundingBox();
  if (!src || !dst) throw new Error(`handles of ${from} → ${to} not on screen`);
  await page.mouse.move(src.x + src.width / 2, src.y + src.height / 2);
  await page.mouse.down();
  await page.mouse.move(dst.x + dst.width / 2, dst.y + dst.height / 2, { steps: 12 });
  await page.mouse.up();
}

async function selectNode(page: Page, id: string): Promise<Locator> {
  await page.getByTestId(`node-${id}`).click();
  const panel = page.getByTestId('node-panel');
  await expect(panel.getByLabel('Node id')).toHaveValue(id);
  return panel;
}

test('build, publish, chat, monitor', async ({ page }) => {
  const name = `E2E greeter ${Date.now()}`;
  await signIn(page);
  await expect(page.getByRole('heading', { name: 'Flows' })).toBeVisible();
  await shot(page, '01-flows');

  // Create a flow: the builder opens with its start node.
  await page.getByLabel('New flow name').fill(name);
  await page.getByRole('button', { name: 'Create flow' }).click();
  await expect(page.getByTestId('node-start')).toBeVisible();
  for (const t of ['start', 'end', 'say', 'listen', 'llm', 'collect', 'http', 'subflow', 'transfer']) {
    await expect(page.getByTestId(`palette-${t}`)).toBeVisible();
  }

  // Drag nodes onto the canvas.
  await dropNode(page, 'say', 220, 140);
  await expect(page.getByTestId('node-say_1')).toBeVisible();
  await dropNode(page, 'listen', 220, 320);
  await dropNode(page, 'say', 450, 320);
  await dropNode(page, 'end', 450, 500);
  for (const id of ['listen_1', 'say_2', 'end_1']) await expect(page.getByTestId(`node-${id}`)).toBeVisible();

  // Undo removes the last node, redo brings it back.
  await page.getByRole('button', { name: 'Undo' }).click();
  await expect(page.getByTestId('node-end_1')).toHaveCount(0);
  await page.getByRole('button', { name: 'Redo' }).click();
  await expect(page.getByTestId('node-end_1')).toBeVisible();

  // Connect them: start → say_1 → listen_1 → say_2 → end_1.
  await connect(page, 'start', 'say_1');
  await connect(page, 'say_1', 'listen_1');
  await connect(page, 'listen_1', 'say_2');
  await connect(page, 'say_2', 'end_1');
  await expect(page.locator('.react-flow__edge')).toHaveCount(4);

  // Saving with an empty `say` text: the server's validation error shows on that node.
  await page.getByRole('button', { name: 'Save draft' }).click();
  await expect(page.getByTestId('node-say_1').locator('.flow-node-error')).toBeVisible();
  await shot(page, '02-builder-validation-error');

  // Fill the node forms generated from the server's JSON Schema.
  let panel = await selectNode(page, 'say_1');
  await panel.getByLabel(/^Text/).fill('Hello! What is your name?');
  panel = await selectNode(page, 'listen_1');
  await panel.getByLabel(/^Into/).fill('caller_name');
  panel = await selectNode(page, 'say_2');
  await panel.getByLabel(/^Text/).fill('Nice to meet you, {{ caller_name }}.');
  await expect(page.getByTestId('node-say_2')).toContainText('Nice to meet you');

  await page.getByRole('button', { name: 'Save draft' }).click();
  await expect(page.getByTestId('save-state')).toContainText('Saved');
  await expect(page.locator('.flow-node-error')).toHaveCount(0);

  // Publish, with its progress.
  await page.getByRole('button', { name: 'Publish' }).click();
  await expect(page.getByTestId('publish-progress')).toContainText('Published version 1');
  await shot(page, '03-builder-published');

  // Change the draft, publish v2, and compare the versions.
  panel = await selectNode(page, 'say_1');
  await panel.getByLabel(/^Text/).fill('Hello there! What is your name?');
  await page.getByRole('button', { name: 'Publish' }).click();
  await expect(page.getByTestId('publish-progress')).toContainText('Published version 2');
  await page.getByRole('tab', { name: 'Versions' }).click();
  await page.getByLabel('Compare from').selectOption('1');
  await page.getByLabel('Compare to').selectOption('2');
  await expect(page.getByTestId('diff')).toContainText('Hello there! What is your name?');
  await shot(page, '04-builder-versions-diff');
  await page.getByRole('tab', { name: 'Flow' }).click();
  await expect(page.getByTestId('flow-settings')).toBeVisible();
  await shot(page, '05-builder-flow-settings');

  // Chat with it in the test console.
  await page.getByRole('link', { name: 'Test', exact: true }).click();
  await page.getByRole('button', { name: 'Start chat' }).click();
  const chat = page.getByTestId('chat-messages');
  await expect(chat).toContainText('Hello there! What is your name?');
  await page.getByLabel('Chat message').fill('Ada');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(chat).toContainText('Nice to meet you, Ada.');
  await shot(page, '06-test-console-chat');
  const sessionHref = await page.getByTestId('chat-session-link').getAttribute('href');
  const sessionId = sessionHref!.split('/').pop()!;

  // Monitoring: the session is listed, and its page shows the transcript.
  await page.getByRole('link', { name: 'Monitoring' }).click();
  const row = page.getByTestId('session-row').filter({ has: page.locator(`a[href$="${sessionId}"]`) });
  await expect(row).toBeVisible();
  await page.getByLabel('Filter by channel').selectOption('chat');
  await expect(row).toBeVisible();
  await shot(page, '07-monitoring-sessions');
  await row.getByRole('link').click();
  const transcript = page.getByTestId('session-transcript');
  await expect(transcript).toContainText('Hello there! What is your name?');
  await expect(transcript).toContainText('Ada');
  await expect(transcript).toContainText('Nice to meet you, Ada.');
  await expect(page.getByTestId('session-variables')).toContainText('caller_name');
  await shot(page, '08-session-detail');
});

test('providers and secrets pages', async ({ page }) => {
  await signIn(page, '/providers');
  await expect(page.getByRole('heading', { name: 'Providers' })).toBeVisible();
  await page.waitForLoadState('networkidle');
  await shot(page, '09-providers');
  await page.goto(`${backend().baseURL}/#/secrets`);
  await expect(page.getByRole('heading', { name: 'Secrets', exact: true })).toBeVisible();
  await page.getByLabel('Secret name').fill('E2E_TEST_KEY');
  await page.getByLabel('Secret value').fill('not-shown-again');
  await page.getByRole('button', { name: 'Save secret' }).click();
  const table = page.getByTestId('secrets-table');
  await expect(table).toContainText('E2E_TEST_KEY');
  await expect(page.locator('body')).not.toContainText('not-shown-again');
  await shot(page, '10-secrets');
});

test('a flow picks an admin\'s provider profile that needs a secret: shown as missing, refused with 412, fixed by adding it', async ({ page, request }) => {
  const name = `E2E override ${Date.now()}`;
  const profile = `openai-${Date.now()}`;
  const flow = await apiCall<{ id: string }>(request, 'POST', '/v1/flows', {
    name,
    document: {
      name,
      nodes: [{ id: 'start', type: 'start' }, { id: 'hi', type: 'say', text: 'Hi there.' }, { id: 'bye', type: 'end' }],
      edges: [{ from: 'start', to: 'hi' }, { from: 'hi', to: 'bye' }],
    },
  });

  // An organization admin adds an OpenAI profile (no network here: its host is marked internal).
  await signIn(page, '/providers');
  await page.getByLabel('Profile name').fill(profile);
  await page.getByLabel('Profile capability').selectOption('llm');
  await page.getByLabel('llm provider').selectOption('openai');
  await expect(page.locator('.profile-form')).toContainText('OPENAI_API_KEY');
  await page.getByLabel('Internal host (may be a private address)').check();
  await page.getByRole('button', { name: 'Add profile' }).click();
  await expect(page.getByTestId('provider-profiles').getByRole('row').filter({ hasText: profile })).toContainText('OPENAI_API_KEY');

  // The flow picks that profile for its LLM, then is published.
  await page.goto(`${backend().baseURL}/#/flows/${flow.id}`);
  await expect(page.getByTestId('node-hi')).toBeVisible();
  await page.getByRole('tab', { name: 'Flow' }).click();
  await page.getByTestId('flow-settings').getByLabel('llm profile').selectOption(profile);
  await expect(page.getByTestId('flow-settings').getByTestId('provider-llm')).toContainText('OPENAI_API_KEY');
  await page.getByRole('button', { name: 'Publish' }).click();
  await expect(page.getByTestId('publish-progress')).toContainText('Published version 1');

  // The secrets page names what the flow lacks.
  await page.getByRole('link', { name: 'Secrets' }).click();
  const row = page.getByTestId('missing-secrets-table').getByRole('row').filter({ hasText: name });
  await expect(row).toContainText('OPENAI_API_KEY');

  // Starting it is refused (HTTP 412), in words.
  await page.goto(`${backend().baseURL}/#/flows/${flow.id}/test`);
  await page.getByRole('button', { name: 'Start chat' }).click();
  await expect(page.getByTestId('chat-panel').getByRole('alert')).toHaveText('This flow cannot start: the secret OPENAI_API_KEY is missing. Add it on the Secrets page.');
  await shot(page, '12-test-console-missing-secret');

  // Add the secret: the flow is ready, and the value is never shown again.
  await page.getByRole('link', { name: 'Secrets' }).click();
  await page.getByLabel('Secret name').fill('OPENAI_API_KEY');
  await page.getByLabel('Secret value').fill('sk-e2e-not-a-real-key');
  await page.getByRole('button', { name: 'Save secret' }).click();
  await expect(row).toContainText('none: ready to run');
  await expect(page.locator('body')).not.toContainText('sk-e2e-not-a-real-key');
  await page.goto(`${backend().baseURL}/#/flows/${flow.id}/test`);
  await page.getByRole('button', { name: 'Start chat' }).click();
  await expect(page.getByTestId('chat-messages')).toContainText('Hi there.');
});
