/**
 * Voice in the browser: Chromium's fake microphone plays a WAV of a caller (synthesised with the backend's
 * offline Piper voice, see make-caller-wav.py) into the test console; the flow greets, listens and answers,
 * and the live transcript of both sides appears on screen.
 */
import { expect, test } from '@playwright/test';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config';
import { apiCall, shot, signIn } from './helpers';

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

test('talk to a published flow by voice', async ({ page, request }) => {
  const flow = await apiCall<{ id: string }>(request, 'POST', '/v1/flows', {
    name: `E2E voice ${Date.now()}`,
    document: {
      name: 'E2E voice',
      // The caller repeats itself every ≈5 s: wait long enough for an utterance after the greeting.
      variables: { voice_no_input_s: { type: 'number', default: 20 } },
      nodes: [
        { id: 'start', type: 'start' },
        // Not interruptible: the looping caller must not cut the greeting short.
        { id: 'greet', type: 'say', text: 'Voice test. What is your name?', interruptible: false },
        { id: 'hear', type: 'listen', into: 'heard' },
        { id: 'answer', type: 'say', text: 'You said {{ heard }}. Goodbye.' },
        { id: 'bye', type: 'end' },
      ],
      edges: [
        { from: 'start', to: 'greet' }, { from: 'greet', to: 'hear' }, { from: 'hear', to: 'answer' }, { from: 'answer', to: 'bye' },
      ],
    },
  });
  await apiCall(request, 'POST', `/v1/flows/${flow.id}/publish`);

  await signIn(page, `/flows/${flow.id}/test`);
  await page.getByRole('button', { name: 'Start voice call' }).click();
  const transcript = page.getByTestId('voice-transcript');
  await expect(transcript.locator('[data-role="agent"]').first()).toContainText('Voice test', { timeout: 60_000 });
  await expect(transcript.locator('[data-role="user"]').first()).toContainText(/my name is/i, { timeout: 90_000 });
  await expect(transcript).toContainText(/You said my name is/i, { timeout: 60_000 });
  // Whisper tiny.en hears the name through the browser's audio processing as "Ada" or "Ade": assert the words around it.
  // The turn's latency arrives once the answer's first audio has left: one waterfall row.
  await expect(page.getByTestId('voice-panel').getByTestId('waterfall')).toContainText('Turn 1', { timeout: 30_000 });
  await shot(page, '11-test-console-voice');

  // Monitoring keeps the call: transcript of both sides and the per-turn waterfall.
  await page.getByTestId('voice-panel').getByRole('link', { name: /^session / }).click();
  const transcriptSaved = page.getByTestId('session-transcript');
  await expect(transcriptSaved).toContainText('Voice test. What is your name?');
  await expect(transcriptSaved.locator('[data-role="user"]').first()).toContainText(/my name is/i);
  await expect(page.getByTestId('waterfall')).toContainText('Turn 1');
  await shot(page, '13-session-voice-waterfall');
});
