/** Providers: the catalog, and the organization's defaults for each capability. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { providersApi } from '../api/flows';
import type { ProviderChoice } from '../api/types';
import { ErrorNote } from '../components/ErrorNote';
import { ProviderPicker } from '../components/ProviderPicker';

const CAPS = ['stt', 'llm', 'tts', 'embeddings'];

export function ProvidersPage() {
  const qc = useQueryClient();
  const catalog = useQuery({ queryKey: ['provider-catalog'], queryFn: providersApi.catalog });
  const org = useQuery({ queryKey: ['org-providers'], queryFn: providersApi.org });
  const [draft, setDraft] = useState<Record<string, ProviderChoice | null>>({});
  useEffect(() => { if (org.data) setDraft(org.data as Record<string, ProviderChoice | null>); }, [org.data]);
  const save = useMutation({
    mutationFn: () => providersApi.saveOrg(Object.fromEntries(Object.entries(draft).filter(([, v]) => v))),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['org-providers'] }),
  });
  return (
    <div>
      <h1>Providers</h1>
      <section className="card">
        <h2>Organization defaults</h2>
        <p className="small muted">Used by every flow that does not choose its own (a flow's choice wins; the server's default applies where neither chooses).</p>
        <ErrorNote error={org.error} context="The organization's providers could not be loaded" />
        {CAPS.map((cap) => (
          <ProviderPicker key={cap} capability={cap} catalog={catalog.data?.items ?? []} value={draft[cap] ?? null}
            onChange={(v) => setDraft((d) => ({ ...d, [cap]: v }))} inheritLabel="Server default" />
        ))}
        <div className="row">
          <button className="primary" onClick={() => save.mutate()} disabled={save.isPending}>{save.isPending ? 'Saving…' : 'Save defaults'}</button>
          {save.isSuccess && <span className="ok small">Saved.</span>}
        </div>
        <ErrorNote error={save.error} context="The defaults were not saved" />
      </section>
      <section className="card">
        <h2>Catalog</h2>
        <ErrorNote error={catalog.error} context="The provider catalog could not be loaded" />
        <table className="table" data-testid="provider-catalog">
          <thead><tr><th>Capability</th><th>Kind</th><th>Required secrets</th><th>Settings</th></tr></thead>
          <tbody>
            {[...(catalog.data?.items ?? [])].sort((a, b) => `${a.capability}${a.kind}`.localeCompare(`${b.capability}${b.kind}`)).map((p) => (
              <tr key={`${p.capability}-${p.kind}`}>
                <td>{p.capability}</td><td><strong>{p.kind}</strong></td>
                <td>{p.required_secrets?.length ? p.required_secrets.join(', ') : <span className="muted">none</span>}</td>
                <td className="small muted">{Object.keys((p.config_schema?.properties as object) ?? {}).join(', ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
