/** Types of the AICO REST API as the dashboard uses them (see issues 2–5). */

export type Position = { x: number; y: number };

export type FlowNode = {
  id: string;
  type: string;
  position?: Position;
  [field: string]: unknown;
};

export type FlowEdge = { from: string; to: string; when?: string | null };

/** A flow's provider choice: an organization profile and harmless tuning (see providers/resolve.ts). */
export type ProviderChoice = { profile?: string; model?: string; voice?: string; language?: string; temperature?: number; max_tokens?: number };

export type FlowDocument = {
  name: string;
  description?: string | null;
  variables?: Record<string, { type: string; default?: unknown }>;
  providers?: Partial<Record<Capability, ProviderChoice | null>>;
  nodes: FlowNode[];
  edges: FlowEdge[];
  [extra: string]: unknown;
};

export type Flow = {
  id: string;
  name: string;
  description?: string | null;
  document: FlowDocument;
  draft_revision: number;
  latest_version?: number | null;
  created_at: string;
  updated_at: string;
};

export type FlowVersion = { version: number; id?: string; created_at: string; document: FlowDocument };

export type Capability = 'stt' | 'llm' | 'tts' | 'embeddings';

export type ChatMessage = { role: string; text: string };

export type CreatedSession = {
  id: string;
  status: string;
  messages: ChatMessage[];
  voice?: { url: string; token: string } | null;
};

export type TurnMetrics = {
  end_of_turn_ms?: number | null;
  stt_final_ms?: number | null;
  llm_ttft_ms?: number | null;
  tts_ttfb_ms?: number | null;
  voice_to_voice_ms?: number | null;
  [k: string]: unknown;
};

export type TranscriptTurn = { role: string; text: string; created_at?: string };

export type SessionSummary = {
  id: string;
  flow_id: string;
  flow_version?: number;
  channel: string;
  status: string;
  created_at: string;
  ended_at?: string | null;
  [k: string]: unknown;
};

export type SessionDetail = SessionSummary & {
  variables: Record<string, unknown>;
  transcript: TranscriptTurn[];
  metrics?: { turns?: TurnMetrics[]; usage?: Record<string, unknown> } | null;
};

export type SessionEvent = {
  seq: number;
  event_id: string;
  type: string;
  direction?: string;
  payload: unknown;
  created_at: string;
};

export type ProviderCatalogItem = {
  kind: string;
  capability: Capability | string;
  config_schema?: Record<string, unknown>;
  required_secrets?: string[];
  [k: string]: unknown;
};

export type SecretInfo = { name: string; created_at: string; updated_at: string };

export type AuthConfig = { mode: 'dev' | 'oidc'; issuer?: string; audience?: string; client_id?: string };
