/** Flow-wide settings: name, description, variables, and per-flow provider overrides. */
import { useQuery } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { providersApi } from '../api/flows';
import type { Capability, FlowDocument, ProviderChoice } from '../api/types';
import { ErrorNote } from '../components/ErrorNote';
import { ProviderPicker } from '../components/ProviderPicker';
import { readOrgProviders } from '../providers/resolve';

const CAPS: Capability[] = ['stt', 'llm', 'tts'];

export function FlowSettingsPanel({ doc, onChange }: { doc: FlowDocument; onChange: (doc: FlowDocument, key: string) => void }) {
  const catalog = useQuery({ queryKey: ['provider-catalog'], queryFn: providersApi.catalog, staleTime: 60_000 });
  const org = useQuery({ queryKey: ['org-providers'], queryFn: providersApi.org, staleTime: 60_000 });
  const orgResolved = org.data ? readOrgProviders(org.data).resolved : {};
  const [varsText, setVarsText] = useState(() => JSON.stringify(doc.variables ?? {}, null, 2));
  const [varsError, setVarsError] = useState('');
  useEffect(() => { setVarsText(JSON.stringify(doc.variables ?? {}, null, 2)); }, [doc.variables]);

  const setProvider = (cap: Capability, v: ProviderChoice | null) => {
    const providers = { ...(doc.providers ?? {}) };
    if (v) providers[cap] = v; else delete providers[cap];
    onChange({ ...doc, providers: Object.keys(providers).length ? providers : undefined }, `providers:${cap}`);
  };

  return (
    <div className="panel" data-testid="flow-settings">
      <h3>Flow settings</h3>
      <label>Description
        <textarea aria-label="Flow description" value={doc.description ?? ''} onChange={(e) => onChange({ ...doc, description: e.target.value }, 'description')} />
      </label>
      <label>Variables (JSON: name → {'{"type", "default"}'})
        <textarea
          aria-label="Flow variables"
          className="mono"
          rows={5}
          value={varsText}
          onChange={(e) => {
            setVarsText(e.target.value);
            try {
              const v = JSON.parse(e.target.value || '{}');
              if (typeof v !== 'object' || Array.isArray(v) || v === null) throw new Error('must be an object');
              setVarsError('');
              onChange({ ...doc, variables: v }, 'variables');
            } catch (err) { setVarsError(`Not valid JSON: ${(err as Error).message}`); }
          }}
        />
      </label>
      {varsError && <div className="error small">{varsError}</div>}
      <h4>Providers for this flow</h4>
      <p className="small muted">Overrides the organization's defaults for sessions of this flow.</p>
      {catalog.error ? <ErrorNote error={catalog.error} context="The provider catalog could not be loaded" /> : null}
      {CAPS.map((cap) => (
        <ProviderPicker
          key={cap}
          capability={cap}
          catalog={catalog.data?.items ?? []}
          value={doc.providers?.[cap] ?? null}
          onChange={(v) => setProvider(cap, v)}
          inheritLabel="Organization default"
          inherited={orgResolved[cap]?.kind}
        />
      ))}
    </div>
  );
}
