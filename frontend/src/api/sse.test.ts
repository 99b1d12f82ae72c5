import { describe, expect, it } from 'vitest';
import { parseSse, readSse } from './sse';

describe('parseSse', () => {
  it('splits named events, joins multi-line data, keeps the unfinished rest', () => {
    const r = parseSse('event: chunk\ndata: {"text":"Hel"}\n\n: comment\ndata: a\ndata: b\n\nevent: final\ndata: {"x"');
    expect(r.events).toEqual([{ event: 'chunk', data: '{"text":"Hel"}' }, { event: 'message', data: 'a\nb' }]);
    expect(r.rest).toBe('event: final\ndata: {"x"');
  });

  it('accepts CRLF line ends', () => {
    expect(parseSse('event: x\r\ndata: 1\r\n\r\n').events).toEqual([{ event: 'x', data: '1' }]);
  });
});

describe('readSse', () => {
  it('reassembles events cut anywhere across chunks, multi-byte characters included', async () => {
    const text = 'event: chunk\ndata: {"text":"héllo"}\n\nevent: final\ndata: {}\n\n';
    const bytes = new TextEncoder().encode(text);
    const body = new ReadableStream<Uint8Array>({
      start(c) { for (let i = 0; i < bytes.length; i += 5) c.enqueue(bytes.slice(i, i + 5)); c.close(); },
    });
    const got = [];
    for await (const e of readSse(body)) got.push(e);
    expect(got).toEqual([{ event: 'chunk', data: '{"text":"héllo"}' }, { event: 'final', data: '{}' }]);
  });
});
