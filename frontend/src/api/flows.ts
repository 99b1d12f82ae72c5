/** Flow, session, provider and secret calls, as react-query hooks where the dashboard reads them. */
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { del, get, post, postRaw, put, qs } from './client';
import { readSse } from './sse';
import type {
  ChatMessage, CreatedSession, Flow, FlowDocument, FlowVersion, ProviderCatalogItem, SecretInfo, SessionDetail, SessionEvent, SessionSummary,
} from './types';
import { FALLBACK_SCHEMA, type JsonSchema } from '../flows/schema';
import { missingSecretsForFlow, type ProfileChoice } from '../providers/resolve';
import { ApiError, errorFromResponse, statusForCode } from './errors';

export const flowsApi = {
  list: () => get<{ items: Flow[] }>('/v1/flows'),
  get: (id: string) => get<Flow>(`/v1/flows/${enc(id)}`),
  create: (body: { name: string; description?: string; document: FlowDocument }) => post<Flow>('/v1/flows', body),
  save: (id: string, body: { name?: string; description?: string | null; document: FlowDocument; draft_revision: number }) => put<Flow>(`/v1/flows/${enc(id)}`, body),
  publish: (id: string) => post<{ version: number; id?: string; created_at: string }>(`/v1/flows/${enc(id)}/publish`),
  versions: (id: string) => get<{ items: FlowVersion[] }>(`/v1/flows/${enc(id)}/versions`),
  remove: (id: string) => del(`/v1/flows/${enc(id)}`),
  schema: () => get<JsonSchema>('/v1/flows/schema'),
  missingSecrets: (id: string) => get<{ missing: string[] }>(`/v1/flows/${enc(id)}/missing-secrets`),
  startSession: (id: string, body: { channel: 'chat' | 'voice'; variables?: Record<string, unknown>; user?: { id: string; cluster?: string } }) =>
    post<CreatedSession>(`/v1/flows/${enc(id)}/sessions`, body),
};

export const sessionsApi = {
  send: (id: string, text: string) => post<{ messages: { role: string; text: string }[]; status: string }>(`/v1/sessions/${enc(id)}/messages`, { text }),
  list: (f: SessionFilters & { cursor?: string }) => get<{ items: SessionSummary[]; next_cursor?: string | null }>(`/v1/sessions${qs({ ...f, limit: f.limit ?? 50 })}`),
  get: (id: string) => get<SessionDetail>(`/v1/sessions/${enc(id)}`),
  events: (id: string) => get<{ items: SessionEvent[] }>(`/v1/sessions/${enc(id)}/events`),
};

export type StreamHandlers = { onChunk: (c: { text: string; stream_id?: string; final?: boolean }) => void };

/**
 * Send a chat message and stream the reply (`?stream=true`, Server-Sent Events: `chunk`, `action`, `error`,
 * `final`). A server that answers plain JSON is accepted too. Resolves with the final messages and status.
 */
export async function sendMessageStreaming(sessionId: string, text: string, h: StreamHandlers): Promise<{ messages: ChatMessage[]; status: string }> {
  const res = await postRaw(`/v1/sessions/${enc(sessionId)}/messages?stream=true`, { text });
  if (!(res.headers.get('content-type') ?? '').includes('text/event-stream') || !res.body) {
    return (await res.json()) as { messages: ChatMessage[]; status: string };
  }
  for await (const ev of readSse(res.body)) {
    const data = JSON.parse(ev.data || '{}');
    if (ev.event === 'chunk') h.onChunk(data);
    else if (ev.event === 'error') throw errorFromResponse(statusForCode(data.error), data);
    else if (ev.event === 'final') return data as { messages: ChatMessage[]; status: string };
  }
  throw new ApiError({ status: 0, code: 'network', message: 'the reply stream ended early' });
}

export const providersApi = {
  catalog: () => get<{ items: ProviderCatalogItem[] }>('/v1/providers'),
  org: () => get<Record<string, unknown>>('/v1/org/providers'),
  profiles: () => get<{ items: ProfileChoice[] }>('/v1/org/provider-profiles'),
  saveOrg: (body: Record<string, unknown>) => put<Record<string, unknown>>('/v1/org/providers', body),
  secrets: () => get<{ items: SecretInfo[] }>('/v1/secrets'),
  putSecret: (name: string, value: string) => put<unknown>(`/v1/secrets/${enc(name)}`, { value }),
  deleteSecret: (name: string) => del(`/v1/secrets/${enc(name)}`),
};

export type SessionFilters = { flow_id?: string; status?: string; channel?: string; since?: string; until?: string; limit?: number };

function enc(s: string) { return encodeURIComponent(s); }

export function useFlows() {
  return useQuery({ queryKey: ['flows'], queryFn: flowsApi.list });
}

export function useFlow(id: string) {
  return useQuery({ queryKey: ['flow', id], queryFn: () => flowsApi.get(id) });
}

/** The flow JSON Schema; when the server cannot give it, the built-in copy keeps the builder usable. */
export function useFlowSchema() {
  return useQuery({
    queryKey: ['flow-schema'],
    queryFn: async () => {
      try { return { schema: await flowsApi.schema(), fromServer: true }; }
      catch (e) { return { schema: FALLBACK_SCHEMA, fromServer: false, error: e }; }
    },
    staleTime: Infinity,
  });
}

export function useVersions(id: string) {
  return useQuery({ queryKey: ['versions', id], queryFn: () => flowsApi.versions(id) });
}

export function useSessions(filters: SessionFilters, { live }: { live: boolean }) {
  return useQuery({
    queryKey: ['sessions', filters],
    queryFn: () => sessionsApi.list(filters),
    refetchInterval: live ? 2000 : false,
    placeholderData: keepPreviousData,
  });
}

export function useSession(id: string) {
  return useQuery({
    queryKey: ['session', id],
    queryFn: () => sessionsApi.get(id),
    refetchInterval: (q) => (q.state.data && isEnded(q.state.data.status) ? false : 2000),
  });
}

export function useSessionEvents(id: string, live: boolean) {
  return useQuery({ queryKey: ['session-events', id], queryFn: () => sessionsApi.events(id), refetchInterval: live ? 2000 : false });
}

export function isEnded(status: string): boolean {
  return ['ended', 'completed', 'failed', 'error', 'closed', 'hung_up', 'cancelled', 'done'].includes(status);
}

/**
 * Which required secrets a flow lacks. Uses `GET /v1/flows/{id}/missing-secrets` where the server has it;
 * otherwise resolves the providers here (the flow draft's profile choices over the organization's profiles) and
 * compares with the stored secret names.
 */
export async function missingSecretsOf(flowId: string): Promise<{ missing: string[]; computed: boolean }> {
  try {
    return { ...(await flowsApi.missingSecrets(flowId)), computed: false };
  } catch (e) {
    // A server without this endpoint answers 404 for the route itself (FastAPI's `Not Found`, or our `no route for …`).
    const routeMissing = e instanceof ApiError && (e.status === 405 || (e.status === 404 && (e.message === 'Not Found' || /^no route/i.test(e.message))));
    if (!routeMissing) throw e;
  }
  const [flow, profiles, secrets] = await Promise.all([flowsApi.get(flowId), providersApi.profiles(), providersApi.secrets()]);
  const missing = missingSecretsForFlow(flow.document.providers, profiles.items, secrets.items.map((s) => s.name));
  return { missing, computed: true };
}
