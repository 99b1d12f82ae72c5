/** Providers: the catalog, the organization's defaults for each capability, and what applies in the end. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Link } from 'react-router-dom';
import { providersApi } from '../api/flows';
import { ErrorNote } from '../components/ErrorNote';
import { ProviderPicker } from '../components/ProviderPicker';
import { readOrgProviders, type ProviderConfig } from '../providers/resolve';

const CAPS = ['stt', 'llm', 'tts', 'embeddings'];

export function ProvidersPage() {
  const qc = useQueryClient();
  const catalog = useQuery({ queryKey: ['provider-catalog'], queryFn: providersApi.catalog });
  const org = useQuery({ queryKey: ['org-providers'], queryFn: providersApi.org });
  const view = org.data ? readOrgProviders(org.data) : null;
  const [draft, setDraft] = useState<Record<string, ProviderConfig | null>>({});
  useEffect(() => { if (org.data) setDraft(readOrgProviders(org.data).layer as Record<string, ProviderConfig | null>); }, [org.data]);
  const save = useMutation({
    mutationFn: () => providersApi.saveOrg(Object.fromEntries(CAPS.map((c) => [c, draft[c] && Object.keys(draft[c]!).length ? draft[c] : null]))),
    onSuccess: (data) => { qc.setQueryData(['org-providers'], data); void qc.invalidateQueries({ queryKey: ['missing-secrets'] }); },
  });
  return (
    <div>
      <h1>Providers</h1>
      <section className="card">
        <h2>Organization defaults</h2>
        <p className="small muted">Used by every flow that does not choose its own. A flow's choice wins over these; the server's default applies where neither chooses.</p>
        <ErrorNote error={org.error} context="The organization's providers could not be loaded" />
        {CAPS.map((cap) => (
          <ProviderPicker key={cap} capability={cap} catalog={catalog.data?.items ?? []} value={draft[cap] ?? null}
            onChange={(v) => setDraft((d) => ({ ...d, [cap]: v }))} inheritLabel="Server default"
            inherited={view?.defaults[cap]?.kind} />
        ))}
        <div className="row">
          <button className="primary" onClick={() => save.mutate()} disabled={save.isPending}>{save.isPending ? 'Saving…' : 'Save defaults'}</button>
          {save.isSuccess && <span className="ok small">Saved.</span>}
        </div>
        <ErrorNote error={save.error} context="The defaults were not saved" />
      </section>
      {view && (
        <section className="card">
          <h2>In effect for this organization</h2>
          <table className="table" data-testid="resolved-providers">
            <thead><tr><th>Capability</th><th>Provider</th><th>From</th></tr></thead>
            <tbody>{CAPS.filter((c) => view.resolved[c]).map((c) => (
              <tr key={c}><td>{c}</td><td><strong>{view.resolved[c]?.kind}</strong></td><td className="muted">{view.sources[c] ?? ''}</td></tr>
            ))}</tbody>
          </table>
          {view.missing && view.missing.length > 0 && <p className="error">Missing secrets: {view.missing.join(', ')}. Sessions will be refused until you <Link to="/secrets">add them</Link>.</p>}
        </section>
      )}
      <section className="card">
        <h2>Catalog</h2>
        <ErrorNote error={catalog.error} context="The provider catalog could not be loaded" />
        <table className="table" data-testid="provider-catalog">
          <thead><tr><th>Capability</th><th>Kind</th><th>Description</th><th>Required secrets</th><th>Settings</th></tr></thead>
          <tbody>
            {[...(catalog.data?.items ?? [])].sort((a, b) => `${a.capability}${a.kind}`.localeCompare(`${b.capability}${b.kind}`)).map((p) => (
              <tr key={`${p.capability}-${p.kind}`}>
                <td>{p.capability}</td><td><strong>{p.kind}</strong>{p.self_hosted ? <span className="badge">self-hosted</span> : null}</td>
                <td className="small">{typeof p.description === 'string' ? p.description : ''}</td>
                <td>{p.required_secrets?.length ? p.required_secrets.join(', ') : <span className="muted">none</span>}</td>
                <td className="small muted">{Object.keys((p.config_schema?.properties as object) ?? {}).filter((k) => k !== 'kind').join(', ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
