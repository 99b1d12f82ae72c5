/** API keys and event webhooks (`/v1/api-keys`, `/v1/webhooks`): what the Integrations page calls. */
import { del, get, post } from './client';

export type ApiKey = { id: string; name: string; role: string; scopes: string[] | null; expires_at: string | null; created_at: string };
export type NewApiKey = ApiKey & { key: string };
export type Webhook = { id: string; url: string; events: string[]; created_at: string };
export type NewWebhook = Webhook & { secret: string };
export type Attempt = { attempt: number; started_at: string; status_code: number | null; latency_ms: number; error: string | null };
export type Delivery = {
  id: string; event: string; session_id: string | null; status: 'pending' | 'delivered' | 'failed';
  attempts: Attempt[]; event_at: string; delivered_at: string | null; next_attempt_at: string | null;
  delivery_latency_ms: number | null;
};

export const ROLES = ['viewer', 'editor', 'admin'] as const;
export const SCOPES = ['flows:read', 'flows:write', 'sessions:read', 'sessions:write', 'providers:read', 'providers:write',
  'secrets:read', 'secrets:write', 'egress:read', 'egress:write', 'api_keys:read', 'api_keys:write', 'webhooks:read', 'webhooks:write', 'widgets:read', 'widgets:write'] as const;
export const EVENTS = ['session.started', 'turn.completed', 'transfer.requested', 'session.ended'] as const;

export const integrationsApi = {
  keys: () => get<{ items: ApiKey[] }>('/v1/api-keys'),
  createKey: (body: { name: string; role: string; scopes?: string[]; expires_at?: string }) => post<NewApiKey>('/v1/api-keys', body),
  revokeKey: (id: string) => del(`/v1/api-keys/${id}`),
  webhooks: () => get<{ items: Webhook[] }>('/v1/webhooks'),
  createWebhook: (body: { url: string; events: string[] }) => post<NewWebhook>('/v1/webhooks', body),
  deleteWebhook: (id: string) => del(`/v1/webhooks/${id}`),
  deliveries: (id: string) => get<{ items: Delivery[] }>(`/v1/webhooks/${id}/deliveries`),
  redeliver: (webhookId: string, deliveryId: string) => post<{ id: string; status: string }>(`/v1/webhooks/${webhookId}/deliveries/${deliveryId}/redeliver`),
};
