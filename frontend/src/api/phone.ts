/** Phone: the organization's numbers (admin writes), its calls, and placing an outbound call. */
import { api, del, get, post } from './client';

export type PhoneProvider = 'livekit' | 'twilio' | 'telnyx';

export type PhoneNumber = {
  id: string;
  number: string;
  flow_id: string;
  provider: PhoneProvider;
  settings: Record<string, string | number | boolean | null>;
  created_at: string;
  updated_at: string;
};

export type NewPhoneNumber = {
  number: string;
  flow_id: string;
  provider: PhoneProvider;
  settings: Record<string, string>;
};

export type PhoneCall = {
  id: string;
  number_id: string | null;
  session_id: string | null;
  provider: PhoneProvider;
  direction: 'inbound' | 'outbound';
  call_ref: string | null;
  from_number: string;
  to_number: string;
  status: string;
  answered_at: string | null;
  ended_at: string | null;
  failure: { error?: string; message?: string } | null;
  created_at: string;
};

export type PlacedCall = { id: string; session_id: string; call_ref: string; to: string; from_number: string; status: string };

const enc = encodeURIComponent;

export const phoneApi = {
  numbers: () => get<{ items: PhoneNumber[] }>('/v1/phone-numbers'),
  create: (body: NewPhoneNumber) => post<PhoneNumber>('/v1/phone-numbers', body),
  update: (id: string, body: Partial<Pick<NewPhoneNumber, 'flow_id' | 'settings'>>) =>
    api<PhoneNumber>(`/v1/phone-numbers/${enc(id)}`, { method: 'PATCH', body }),
  remove: (id: string) => del(`/v1/phone-numbers/${enc(id)}`),
  calls: () => get<{ items: PhoneCall[] }>('/v1/calls?limit=50'),
  placeCall: (body: { flow_id: string; to: string; from_number: string }) => post<PlacedCall>('/v1/calls', body),
};

/** `key=value` lines (a number's carrier settings) as an object; a line without `=` is an error. */
export function parseSettings(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf('=');
    if (at <= 0) throw new Error(`"${line}" is not key=value`);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}
