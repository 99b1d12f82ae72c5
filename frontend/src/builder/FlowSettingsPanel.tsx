/** Flow-wide settings: name, description, variables, and the provider profile per capability. */
import { useQuery } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { providersApi } from '../api/flows';
import type { Capability, FlowDocument, ProviderChoice } from '../api/types';
import { ErrorNote } from '../components/ErrorNote';
import { ProviderProfilePicker } from '../components/ProviderProfilePicker';

const CAPS: Capability[] = ['stt', 'llm', 'tts'];

export function FlowSettingsPanel({ doc, onChange }: { doc: FlowDocument; onChange: (doc: FlowDocument, key: string) => void }) {
  const profiles = useQuery({ queryKey: ['provider-profiles'], queryFn: providersApi.profiles, staleTime: 60_000 });
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
      <p className="small muted">Pick one of the organization's provider profiles (an admin sets their servers and secrets on the Providers page) and tune it.</p>
      {profiles.error ? <ErrorNote error={profiles.error} context="The provider profiles could not be loaded" /> : null}
      {CAPS.map((cap) => (
        <ProviderProfilePicker
          key={cap}
          capability={cap}
          profiles={profiles.data?.items ?? []}
          value={doc.providers?.[cap] ?? null}
          onChange={(v) => setProvider(cap, v)}
        />
      ))}
    </div>
  );
}
