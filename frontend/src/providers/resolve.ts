/**
 * Provider profiles as the server resolves them. Organization admins own named profiles per capability
 * (kind, base URL, secret names, allowed models, caps); a flow picks one by name (or gets the
 * organization's default profile for that capability) and tunes only harmless fields. Every profile
 * config field ending in `_secret` names a secret the sessions using it need.
 */
export type ProviderConfig = { kind?: string; [field: string]: unknown };
export type Layer = Partial<Record<string, ProviderConfig | null | undefined>>;

/** What a flow says about one capability (nothing else is accepted by the server). */
export type FlowChoice = { profile?: string; model?: string; voice?: string; language?: string; temperature?: number; max_tokens?: number };
export const TUNING_FIELDS = ['model', 'voice', 'language', 'temperature', 'max_tokens'] as const;

/** A profile as the admin edits it (`GET/PUT /v1/org/providers`). */
export type Profile = {
  name: string; capability: string; config: ProviderConfig; allowed_models: string[];
  max_tokens_cap: number | null; internal: boolean; default: boolean;
};

/** A profile as a flow editor sees it (`GET /v1/org/provider-profiles`): no URLs. */
export type ProfileChoice = {
  name: string; capability: string; kind: string; default: boolean; model?: string | null;
  allowed_models: string[]; max_tokens_cap: number | null; required_secrets: string[];
};

export function mergeConfig(lower: ProviderConfig | undefined, upper: ProviderConfig): ProviderConfig {
  if (!lower || (upper.kind && upper.kind !== lower.kind)) return { ...upper };
  return { ...lower, ...upper };
}

/** Catalog entries as far as resolution needs them: a kind's config schema states its defaults. */
export type CatalogEntry = { kind: string; capability: string; config_schema?: Record<string, unknown> };

/**
 * Secrets the configs need: every `*_secret` field, taking the catalog's default for one the config leaves
 * out (a profile may say only `{"kind": "openai"}`; the server fills in `api_key_secret: "OPENAI_API_KEY"`).
 */
export function requiredSecrets(configs: Record<string, ProviderConfig>, catalog: CatalogEntry[] = []): string[] {
  const names = new Set<string>();
  for (const [cap, cfg] of Object.entries(configs)) {
    const entry = catalog.find((c) => c.capability === cap && c.kind === cfg.kind);
    const props = (entry?.config_schema?.properties ?? {}) as Record<string, { default?: unknown }>;
    const withDefaults: Record<string, unknown> = {};
    for (const [k, p] of Object.entries(props)) if (k.endsWith('_secret') && p && 'default' in p) withDefaults[k] = p.default;
    for (const [k, v] of Object.entries({ ...withDefaults, ...cfg })) if (k.endsWith('_secret') && typeof v === 'string' && v) names.add(v);
  }
  return [...names].sort();
}

/** The profile a flow's choice lands on: the one it names, else the organization's default. */
export function profileFor(capability: string, choice: FlowChoice | null | undefined, profiles: ProfileChoice[]): ProfileChoice | undefined {
  const mine = profiles.filter((p) => p.capability === capability);
  return choice?.profile ? mine.find((p) => p.name === choice.profile) : mine.find((p) => p.default);
}

/** Secrets a flow's sessions would lack: the reason its trigger would get HTTP 412. */
export function missingSecretsForFlow(flowProviders: Partial<Record<string, FlowChoice | null>> | undefined, profiles: ProfileChoice[], stored: string[], capabilities: string[] = ['stt', 'llm', 'tts']): string[] {
  const have = new Set(stored);
  const names = new Set<string>();
  for (const cap of capabilities) for (const n of profileFor(cap, flowProviders?.[cap], profiles)?.required_secrets ?? []) names.add(n);
  return [...names].filter((n) => !have.has(n)).sort();
}

/** `GET /v1/org/providers`: `{profiles, defaults, resolved, sources, missing_secrets}`. */
export type OrgProvidersView = { profiles: Profile[]; defaults: Layer; resolved: Layer; sources: Record<string, string>; missing: string[] | null };

export function readOrgProviders(body: unknown): OrgProvidersView {
  const b = (body ?? {}) as Record<string, unknown>;
  return {
    profiles: Array.isArray(b.profiles) ? (b.profiles as Profile[]) : [],
    defaults: (b.defaults ?? {}) as Layer,
    resolved: (b.resolved ?? {}) as Layer,
    sources: (b.sources ?? {}) as Record<string, string>,
    missing: Array.isArray(b.missing_secrets) ? b.missing_secrets.map(String) : null,
  };
}
