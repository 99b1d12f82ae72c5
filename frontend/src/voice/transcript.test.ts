import { describe, expect, it } from 'vitest';
import { appendAgentDelta, applyTranscript, type LiveLine } from './transcript';

describe('applyTranscript', () => {
  it('replaces the open interim line of the same role with newer text, then closes it', () => {
    let l: LiveLine[] = [];
    l = applyTranscript(l, { role: 'user', text: 'hel', final: false });
    l = applyTranscript(l, { role: 'user', text: 'hello the', final: false });
    l = applyTranscript(l, { role: 'user', text: 'hello there', final: true });
    expect(l).toEqual([{ role: 'user', text: 'hello there', final: true }]);
    l = applyTranscript(l, { role: 'user', text: 'again', final: true });
    expect(l).toHaveLength(2);
  });

  it('keeps the two sides apart and treats assistant as agent', () => {
    let l: LiveLine[] = [];
    l = applyTranscript(l, { role: 'user', text: 'hi', final: false });
    l = applyTranscript(l, { role: 'assistant', text: 'Hello!' });
    l = applyTranscript(l, { role: 'user', text: 'hi there', final: true });
    expect(l).toEqual([{ role: 'user', text: 'hi there', final: true }, { role: 'agent', text: 'Hello!', final: true }]);
  });

  it('drops an empty final line', () => {
    expect(applyTranscript([], { role: 'user', text: '', final: true })).toEqual([]);
  });
});

describe('appendAgentDelta', () => {
  it('grows one interim agent line from streamed pieces, which the final transcript then replaces', () => {
    let l: LiveLine[] = [{ role: 'user', text: 'hi', final: true }];
    l = appendAgentDelta(l, 'Hello');
    l = appendAgentDelta(l, ' there');
    expect(l).toEqual([{ role: 'user', text: 'hi', final: true }, { role: 'agent', text: 'Hello there', final: false }]);
    l = applyTranscript(l, { role: 'agent', text: 'Hello there.', final: true });
    expect(l).toEqual([{ role: 'user', text: 'hi', final: true }, { role: 'agent', text: 'Hello there.', final: true }]);
    l = appendAgentDelta(l, 'Next');
    expect(l).toHaveLength(3);
  });

  it('keeps appending to the open agent line when the caller’s interim words came in between', () => {
    let l: LiveLine[] = [];
    l = appendAgentDelta(l, 'One');
    l = applyTranscript(l, { role: 'user', text: 'wa', final: false });
    l = appendAgentDelta(l, ' two');
    expect(l).toEqual([{ role: 'agent', text: 'One two', final: false }, { role: 'user', text: 'wa', final: false }]);
  });
});
