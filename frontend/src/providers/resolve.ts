/**
 * Provider resolution as the server does it (flow over organization over default; a layer that names
 * another kind replaces the config, the same kind merges field by field), and the secrets a resolved
 * config needs: every field ending in `_secret` names one.
 */
export type ProviderConfig = { kind?: string; [field: string]: unknown };
export type Layer = Partial<Record<string, ProviderConfig | null | undefined>>;

export function mergeConfig(lower: ProviderConfig | undefined, upper: ProviderConfig): ProviderConfig {
  if (!lower || (upper.kind && upper.kind !== lower.kind)) return { ...upper };
  return { ...lower, ...upper };
}

export function resolveLayers(...layers: (Layer | null | undefined)[]): Record<string, ProviderConfig> {
  const out: Record<string, ProviderConfig> = {};
  for (const layer of layers) {
    for (const [cap, cfg] of Object.entries(layer ?? {})) {
      if (cfg && typeof cfg === 'object' && Object.keys(cfg).length) out[cap] = mergeConfig(out[cap], cfg);
    }
  }
  return out;
}

/** Catalog entries as far as resolution needs them: a kind's config schema states its defaults. */
export type CatalogEntry = { kind: string; capability: string; config_schema?: Record<string, unknown> };

/**
 * Secrets the configs need: every `*_secret` field, taking the catalog's default for one the config leaves
 * out (a flow may say only `{"kind": "openai"}`; the server fills in `api_key_secret: "OPENAI_API_KEY"`).
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

/** Secrets a flow's sessions would lack: the reason its trigger would get HTTP 412. */
export function missingSecretsForFlow(flowProviders: Layer | undefined, orgResolved: Layer, stored: string[], catalog: CatalogEntry[] = []): string[] {
  const have = new Set(stored);
  return requiredSecrets(resolveLayers(orgResolved, flowProviders), catalog).filter((n) => !have.has(n));
}

/** `GET /v1/org/providers` answers either the bare layer or `{providers, defaults, resolved, sources, missing_secrets}`. */
export type OrgProvidersView = { layer: Layer; defaults: Layer; resolved: Layer; sources: Record<string, string>; missing: string[] | null };

export function readOrgProviders(body: unknown): OrgProvidersView {
  const b = (body ?? {}) as Record<string, unknown>;
  if (b.providers && typeof b.providers === 'object') {
    const defaults = (b.defaults ?? {}) as Layer;
    const layer = b.providers as Layer;
    return {
      layer,
      defaults,
      resolved: (b.resolved as Layer | undefined) ?? resolveLayers(defaults, layer),
      sources: (b.sources ?? {}) as Record<string, string>,
      missing: Array.isArray(b.missing_secrets) ? b.missing_secrets.map(String) : null,
    };
  }
  const layer = b as Layer;
  return { layer, defaults: {}, resolved: resolveLayers(layer), sources: {}, missing: null };
}
