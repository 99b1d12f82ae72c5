/** Providers: the organization's provider profiles (admin), what applies by default, and the catalog.
 * A profile holds everything that can carry a secret or reach the network (kind, base URL, secret
 * names); flows pick a profile by name and may only tune it. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router-dom';
import { providersApi } from '../api/flows';
import { ErrorNote } from '../components/ErrorNote';
import { ProviderPicker } from '../components/ProviderPicker';
import { readOrgProviders, requiredSecrets, type Profile, type ProviderConfig } from '../providers/resolve';

const CAPS = ['stt', 'llm', 'tts', 'embeddings'];
const PROFILE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const emptyProfile = (): Profile => ({ name: '', capability: 'llm', config: {}, allowed_models: [], max_tokens_cap: null, internal: false, default: false });

export function ProvidersPage() {
  const qc = useQueryClient();
  const catalog = useQuery({ queryKey: ['provider-catalog'], queryFn: providersApi.catalog });
  const org = useQuery({ queryKey: ['org-providers'], queryFn: providersApi.org });
  const view = org.data ? readOrgProviders(org.data) : null;
  const [draft, setDraft] = useState<Profile>(emptyProfile);
  const [models, setModels] = useState('');
  const save = useMutation({
    mutationFn: (profiles: Profile[]) => providersApi.saveOrg({ profiles }),
    onSuccess: (data) => {
      qc.setQueryData(['org-providers'], data);
      for (const key of ['missing-secrets', 'provider-profiles']) void qc.invalidateQueries({ queryKey: [key] });
    },
  });
  const profiles = view?.profiles ?? [];
  const needs = draft.config.kind ? requiredSecrets({ [draft.capability]: draft.config }, catalog.data?.items ?? []) : [];
  const nameOk = PROFILE_NAME.test(draft.name) && !profiles.some((p) => p.name === draft.name && p.capability === draft.capability);
  const add = () => {
    const profile: Profile = { ...draft, allowed_models: models.split(',').map((m) => m.trim()).filter(Boolean) };
    const rest = profile.default ? profiles.map((p) => (p.capability === profile.capability ? { ...p, default: false } : p)) : profiles;
    save.mutate([...rest, profile], { onSuccess: () => { setDraft(emptyProfile()); setModels(''); } });
  };
  return (
    <div>
      <h1>Providers</h1>
      <section className="card">
        <h2>Provider profiles</h2>
        <p className="small muted">Only organization admins manage profiles. A flow picks a profile by name and may only tune it (model among the allowed ones, voice, language, temperature, max tokens up to the cap). A profile's server is checked by the egress guard unless it is marked internal.</p>
        <ErrorNote error={org.error} context="The organization's providers could not be loaded" />
        <table className="table" data-testid="provider-profiles">
          <thead><tr><th>Name</th><th>Capability</th><th>Provider</th><th>Needs secrets</th><th>Bounds</th><th /></tr></thead>
          <tbody>{profiles.map((p) => (
            <tr key={`${p.capability}-${p.name}`}>
              <td className="mono">{p.name}{p.default ? <span className="badge">default</span> : null}{p.internal ? <span className="badge">internal</span> : null}</td>
              <td>{p.capability}</td><td><strong>{String(p.config.kind ?? view?.defaults[p.capability]?.kind ?? '')}</strong></td>
              <td>{requiredSecrets({ [p.capability]: p.config }, catalog.data?.items ?? []).join(', ') || <span className="muted">none</span>}</td>
              <td className="small muted">{[p.allowed_models.length ? `models: ${p.allowed_models.join(', ')}` : '', p.max_tokens_cap ? `max tokens ≤ ${p.max_tokens_cap}` : ''].filter(Boolean).join(' · ')}</td>
              <td><button className="danger small" onClick={() => { if (window.confirm(`Remove the profile ${p.name}? Flows that pick it will stop starting.`)) save.mutate(profiles.filter((q) => q !== p)); }}>Remove</button></td>
            </tr>
          ))}</tbody>
        </table>
        {view && !profiles.length && <p className="muted">No profiles yet: every flow runs the server defaults.</p>}
        <h3>Add a profile</h3>
        <form className="profile-form" onSubmit={(e) => { e.preventDefault(); if (nameOk && draft.config.kind) add(); }}>
          <div className="row">
            <input aria-label="Profile name" placeholder="name (e.g. main)" value={draft.name} onChange={(e) => setDraft({ ...draft, name: e.target.value })} />
            <select aria-label="Profile capability" value={draft.capability} onChange={(e) => setDraft({ ...draft, capability: e.target.value, config: {} })}>
              {CAPS.map((c) => <option key={c} value={c}>{c}</option>)}
            </select>
          </div>
          <ProviderPicker capability={draft.capability} catalog={catalog.data?.items ?? []} value={draft.config as ProviderConfig}
            onChange={(v) => setDraft({ ...draft, config: v ?? {} })} inheritLabel="Choose a provider" />
          <div className="row">
            <input aria-label="Allowed models" placeholder="other models flows may pick (comma-separated)" value={models} onChange={(e) => setModels(e.target.value)} />
            <input aria-label="Max tokens cap" type="number" min={1} placeholder="max tokens cap" value={draft.max_tokens_cap ?? ''} onChange={(e) => setDraft({ ...draft, max_tokens_cap: e.target.value ? Number(e.target.value) : null })} />
          </div>
          <label className="small"><input type="checkbox" checked={draft.default} onChange={(e) => setDraft({ ...draft, default: e.target.checked })} /> Default for {draft.capability}</label>{' '}
          <label className="small"><input type="checkbox" checked={draft.internal} onChange={(e) => setDraft({ ...draft, internal: e.target.checked })} /> Internal host (may be a private address)</label>
          {needs.length ? <p className="small muted">Sessions using it need the secrets: {needs.join(', ')}</p> : null}
          <div className="row">
            <button className="primary" type="submit" disabled={!nameOk || !draft.config.kind || save.isPending}>{save.isPending ? 'Saving…' : 'Add profile'}</button>
            {save.isSuccess && <span className="ok small">Saved.</span>}
          </div>
          {draft.name && !PROFILE_NAME.test(draft.name) && <p className="error small">A name is lower-case letters, digits, - and _.</p>}
        </form>
        <ErrorNote error={save.error} context="The profiles were not saved" />
      </section>
      {view && (
        <section className="card">
          <h2>In effect for flows that pick no profile</h2>
          <table className="table" data-testid="resolved-providers">
            <thead><tr><th>Capability</th><th>Provider</th><th>From</th></tr></thead>
            <tbody>{CAPS.filter((c) => view.resolved[c]).map((c) => (
              <tr key={c}><td>{c}</td><td><strong>{view.resolved[c]?.kind}</strong></td><td className="muted">{view.sources[c] ?? ''}</td></tr>
            ))}</tbody>
          </table>
          {view.missing && view.missing.length > 0 && <p className="error">Missing secrets: {view.missing.join(', ')}. Sessions using these profiles will be refused until you <Link to="/secrets">add them</Link>.</p>}
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
