/** The WhatsApp channel's API: numbers (admin) and conversations. */
import { api, del, get, post } from './client';

export type WhatsAppNumber = {
  id: string;
  phone_number_id: string;
  display_number: string;
  flow_id: string;
  app_secret_secret: string;
  access_token_secret: string;
  voice_replies: boolean;
  last_error: { code: number | null; message: string } | null;
  created_at: string;
  updated_at: string;
};

export type NewWhatsAppNumber = {
  phone_number_id: string;
  display_number: string;
  flow_id: string;
  verify_token: string;
  app_secret_secret: string;
  access_token_secret: string;
  voice_replies: boolean;
};

const enc = encodeURIComponent;

export const whatsappApi = {
  numbers: () => get<{ items: WhatsAppNumber[] }>('/v1/channels/whatsapp/numbers'),
  create: (body: NewWhatsAppNumber) => post<WhatsAppNumber>('/v1/channels/whatsapp/numbers', body),
  update: (id: string, body: Partial<NewWhatsAppNumber>) =>
    api<WhatsAppNumber>(`/v1/channels/whatsapp/numbers/${enc(id)}`, { method: 'PATCH', body }),
  remove: (id: string) => del(`/v1/channels/whatsapp/numbers/${enc(id)}`),
};
