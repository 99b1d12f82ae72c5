/** Secrets: write-only values (the server never returns them), and which secrets each flow still lacks. */
import { useMutation, useQueries, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router-dom';
import { missingSecretsOf, providersApi, useFlows } from '../api/flows';
import { describeError } from '../api/errors';
import { ErrorNote } from '../components/ErrorNote';

export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

export function SecretsPage() {
  const qc = useQueryClient();
  const secrets = useQuery({ queryKey: ['secrets'], queryFn: providersApi.secrets });
  const flows = useFlows();
  const missing = useQueries({
    queries: (flows.data?.items ?? []).map((f) => ({ queryKey: ['missing-secrets', f.id], queryFn: () => missingSecretsOf(f.id), retry: false })),
  });
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const invalidate = () => { void qc.invalidateQueries({ queryKey: ['secrets'] }); void qc.invalidateQueries({ queryKey: ['missing-secrets'] }); };
  const put = useMutation({ mutationFn: (v: { name: string; value: string }) => providersApi.putSecret(v.name, v.value), onSuccess: () => { setValue(''); setName(''); invalidate(); } });
  const remove = useMutation({ mutationFn: (n: string) => providersApi.deleteSecret(n), onSuccess: invalidate });
  const nameOk = SECRET_NAME.test(name);
  return (
    <div>
      <h1>Secrets</h1>
      <section className="card">
        <h2>Set a secret</h2>
        <p className="small muted">Values are stored encrypted and are never shown again; setting an existing name replaces its value.</p>
        <form className="row" onSubmit={(e) => { e.preventDefault(); if (nameOk && value) put.mutate({ name, value }); }}>
          <input aria-label="Secret name" placeholder="NAME (e.g. OPENAI_API_KEY)" value={name} onChange={(e) => setName(e.target.value)} />
          <input aria-label="Secret value" type="password" autoComplete="new-password" placeholder="value" value={value} onChange={(e) => setValue(e.target.value)} />
          <button className="primary" type="submit" disabled={!nameOk || !value || put.isPending}>Save secret</button>
        </form>
        {name && !nameOk && <p className="error small">A name starts with a letter or _ and holds letters, digits, _ . -</p>}
        <ErrorNote error={put.error} context="The secret was not saved" />
      </section>
      <section className="card">
        <h2>Stored secrets</h2>
        <ErrorNote error={secrets.error} context="The secrets could not be loaded" />
        <ErrorNote error={remove.error} context="The secret was not deleted" />
        {secrets.data && !secrets.data.items.length && <p className="muted">No secrets yet.</p>}
        {secrets.data && secrets.data.items.length > 0 && (
          <table className="table" data-testid="secrets-table">
            <thead><tr><th>Name</th><th>Value</th><th>Updated</th><th /></tr></thead>
            <tbody>{secrets.data.items.map((s) => (
              <tr key={s.name}><td className="mono">{s.name}</td><td className="muted">•••••• (write-only)</td><td className="small muted">{new Date(s.updated_at).toLocaleString()}</td>
                <td><button className="danger small" onClick={() => { if (window.confirm(`Delete the secret ${s.name}? Flows that need it will stop starting.`)) remove.mutate(s.name); }}>Delete</button></td></tr>
            ))}</tbody>
          </table>
        )}
      </section>
      <section className="card">
        <h2>Missing secrets per flow</h2>
        <p className="small muted">A trigger of a flow with missing secrets is refused (HTTP 412) before anything runs.</p>
        <ErrorNote error={flows.error} context="The flows could not be loaded" />
        <table className="table" data-testid="missing-secrets-table">
          <thead><tr><th>Flow</th><th>Missing secrets</th></tr></thead>
          <tbody>{(flows.data?.items ?? []).map((f, i) => {
            const q = missing[i];
            return (
              <tr key={f.id}><td><Link to={`/flows/${f.id}`}>{f.name}</Link></td>
                <td>{q?.isPending ? <span className="muted">checking…</span>
                  : q?.error ? <span className="muted">{describeError(q.error, 'unknown')}</span>
                  : q?.data?.missing.length ? <span className="error-text">{q.data.missing.map((m) => <button key={m} className="link" onClick={() => setName(m)} title="Set this secret">{m}</button>)}</span>
                  : <span className="ok-text">none: ready to run</span>}</td></tr>
            );
          })}</tbody>
        </table>
        {missing.some((q) => q.data?.computed) && <p className="small muted">Worked out in the browser from the flow's draft providers, the organization's providers and the stored secret names (this server has no missing-secrets endpoint).</p>}
      </section>
    </div>
  );
}
