// @vitest-environment jsdom
/** The widget's pure parts: reading a Server-Sent Events block, and drawing the live voice transcript. */
import { describe, expect, it } from 'vitest';
import { parseEvent } from './widgetApi';
import { TranscriptView } from './widgetVoice';

describe('parseEvent', () => {
  it('reads the event name and its JSON data', () => {
    expect(parseEvent('event: chunk\ndata: {"text": "Hi", "message": "m1"}')).toEqual({ name: 'chunk', data: { text: 'Hi', message: 'm1' } });
  });
  it('skips a block without data', () => {
    expect(parseEvent(': keep-alive')).toBeNull();
  });
});

describe('TranscriptView', () => {
  const bubbles = (log: HTMLElement) => [...log.children].map((b) => `${b.className}|${(b as HTMLElement).dataset.role}|${b.textContent}`);

  it('shows both sides: the caller interim replaced by its final text, agent pieces appended', () => {
    const log = document.createElement('div');
    const view = new TranscriptView(log);
    view.apply({ type: 'transcript', role: 'agent', text: 'What is your name?', final: true });
    view.apply({ type: 'transcript', role: 'user', text: 'My name', final: false });
    expect(bubbles(log)).toEqual(['msg agent|agent|What is your name?', 'msg visitor interim|user|My name']);
    view.apply({ type: 'transcript', role: 'user', text: 'My name is Ada.', final: true });
    view.apply({ type: 'agent_text', text: 'Hello ', final: false });
    view.apply({ type: 'agent_text', text: 'Ada', final: false });
    view.apply({ type: 'metrics', turn: {} });
    expect(bubbles(log)).toEqual([
      'msg agent|agent|What is your name?', 'msg visitor|user|My name is Ada.', 'msg agent interim|agent|Hello Ada',
    ]);
    view.apply({ type: 'transcript', role: 'agent', text: 'Hello Ada.', final: true });
    expect(bubbles(log).slice(2)).toEqual(['msg agent|agent|Hello Ada.']);
  });
});
