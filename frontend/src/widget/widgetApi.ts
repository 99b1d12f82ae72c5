/** The widget's public endpoints (`/v1/widget/{key}/…`): JSON calls and the streamed reply (Server-Sent Events). */

export type WidgetConfig = { voice: boolean };
export type VisitorSession = { session_id: string; visitor_token: string; messages: { text: string }[] };
export type VisitorCall = { session_id: string; voice: { url: string; expires_at: string } };
export type ReplyChunk = { text: string; message: string; final?: boolean };

export class HttpError extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status}`);
  }
}

export class WidgetApi {
  constructor(readonly base: string) {}

  async config(): Promise<WidgetConfig> {
    const r = await fetch(this.base);
    if (!r.ok) throw new HttpError(r.status);
    return (await r.json()) as WidgetConfig;
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.send(path, body).then((r) => r.json() as Promise<T>);
  }

  /** The reply as it is produced: `chunk` events read from the response body as they arrive. */
  async stream(path: string, body: unknown, onChunk: (c: ReplyChunk) => void, onError: () => void): Promise<void> {
    const r = await this.send(path, body);
    if (!r.body) throw new HttpError(r.status);
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const part = await reader.read();
      if (part.done) return;
      buffer += decoder.decode(part.value, { stream: true });
      const blocks = buffer.split('\n\n');
      buffer = blocks.pop() ?? '';
      for (const block of blocks) {
        const event = parseEvent(block);
        if (event?.name === 'chunk') onChunk(event.data as ReplyChunk);
        else if (event?.name === 'error') onError();
      }
    }
  }

  private async send(path: string, body: unknown): Promise<Response> {
    const r = await fetch(this.base + path, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    if (!r.ok) throw new HttpError(r.status);
    return r;
  }
}

/** One Server-Sent Events block (`event: …` and `data: …` lines). */
export function parseEvent(block: string): { name: string; data: unknown } | null {
  let name = '';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) name = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  return data ? { name, data: JSON.parse(data) } : null;
}
