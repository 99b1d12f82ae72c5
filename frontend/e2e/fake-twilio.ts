/**
 * A fake of Twilio's REST API on loopback for the e2e run, for the calls the backend places with the real
 * `twilio` client (AICO_TELEPHONY_TWILIO_API_URL points here): `POST /2010-04-01/Accounts/{AccountSid}/Calls.json`
 * with HTTP Basic (account SID, auth token) and a form body (`To`, `From`, `Url`, `StatusCallback`, …), answered as
 * Twilio does (201, the call resource, status `queued`). What it was asked is listed at `GET /_placed` for the specs.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export const E2E_TWILIO_ACCOUNT = `AC${'e2e0'.repeat(8)}`;
export const E2E_TWILIO_TOKEN = 'e2e-twilio-auth-token';

export type PlacedCall = { account: string; authorized: boolean; form: Record<string, string> };

async function body(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 65_536) throw new Error('request body too large');
  }
  return text;
}

function authorized(req: IncomingMessage, account: string): boolean {
  const [scheme, encoded] = (req.headers.authorization ?? '').split(' ');
  if (scheme !== 'Basic' || !encoded) return false;
  return Buffer.from(encoded, 'base64').toString() === `${account}:${E2E_TWILIO_TOKEN}` && account === E2E_TWILIO_ACCOUNT;
}

export async function startFakeTwilio(): Promise<{ url: string; server: Server }> {
  const placed: PlacedCall[] = [];
  const server = createServer(async (req, res) => {
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    try {
      if (req.method === 'GET' && req.url === '/_placed') return json(200, placed);
      const match = /^\/2010-04-01\/Accounts\/([^/]+)\/Calls\.json$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !match) return json(404, { code: 20404, message: 'not found', status: 404 });
      const account = decodeURIComponent(match[1]);
      const form = Object.fromEntries(new URLSearchParams(await body(req)));
      const ok = authorized(req, account);
      placed.push({ account, authorized: ok, form });
      if (!ok) return json(401, { code: 20003, message: 'Authenticate', status: 401 });
      const sid = `CA${randomBytes(16).toString('hex')}`;
      return json(201, {
        sid, account_sid: account, to: form.To, from: form.From, status: 'queued', direction: 'outbound-api',
        uri: `/2010-04-01/Accounts/${account}/Calls/${sid}.json`,
      });
    } catch (e) {
      return json(400, { code: 21000, message: (e as Error).message, status: 400 });
    }
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server };
}
