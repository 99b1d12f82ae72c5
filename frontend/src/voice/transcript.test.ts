import { describe, expect, it } from 'vitest';
import { applyTranscript, type LiveLine } from './transcript';

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
