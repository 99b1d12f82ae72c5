/** Integrations: API keys for machines (shown once, scoped, revocable) and event webhooks with their deliveries. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { EVENTS, integrationsApi, ROLES, SCOPES, type Webhook } from '../api/integrations';
import { ErrorNote } from '../components/ErrorNote';

export function IntegrationsPage() {
  return (
    <div>
      <h1>Integrations</h1>
      <ApiKeys />
      <Webhooks />
    </div>
  );
}

function ApiKeys() {
  const qc = useQueryClient();
  const keys = useQuery({ queryKey: ['api-keys'], queryFn: integrationsApi.keys });
  const [name, setName] = useState('');
  const [role, setRole] = useState<string>('editor');
  const [scopes, setScopes] = useState<string[]>([]);
  const [shown, setShown] = useState<string | null>(null);
  const invalidate = () => void qc.invalidateQueries({ queryKey: ['api-keys'] });
  const create = useMutation({
    mutationFn: () => integrationsApi.createKey({ name, role, ...(scopes.length ? { scopes } : {}) }),
    onSuccess: (made) => { setShown(made.key); setName(''); setScopes([]); invalidate(); },
  });
  const revoke = useMutation({ mutationFn: integrationsApi.revokeKey, onSuccess: invalidate });
  const toggle = (s: string) => setScopes((cur) => (cur.includes(s) ? cur.filter((x) => x !== s) : [...cur, s]));
  return (
    <section className="card">
      <h2>API keys</h2>
      <p className="small muted">A key is shown once. Scopes narrow what it may do within its role; none means everything the role allows.</p>
      <form className="row" onSubmit={(e) => { e.preventDefault(); if (name) create.mutate(); }}>
        <input aria-label="Key name" placeholder="name (e.g. crm trigger)" value={name} onChange={(e) => setName(e.target.value)} />
        <select aria-label="Key role" value={role} onChange={(e) => setRole(e.target.value)}>
          {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
        </select>
        <button className="primary" type="submit" disabled={!name || create.isPending}>Create key</button>
      </form>
      <fieldset className="row small" aria-label="Key scopes">
        {SCOPES.map((s) => (
          <label key={s}><input type="checkbox" checked={scopes.includes(s)} onChange={() => toggle(s)} /> {s}</label>
        ))}
      </fieldset>
      {shown && <p data-testid="new-key">New key (copy it now, it is not shown again): <code className="mono">{shown}</code></p>}
      <ErrorNote error={create.error} context="The key was not created" />
      <ErrorNote error={keys.error} context="The keys could not be loaded" />
      <ErrorNote error={revoke.error} context="The key was not revoked" />
      <table className="table" data-testid="keys-table">
        <thead><tr><th>Name</th><th>Role</th><th>Scopes</th><th>Expires</th><th /></tr></thead>
        <tbody>{(keys.data?.items ?? []).map((k) => (
          <tr key={k.id}><td>{k.name}</td><td>{k.role}</td><td className="small mono">{k.scopes?.join(' ') ?? 'all of the role'}</td>
            <td className="small muted">{k.expires_at ? new Date(k.expires_at).toLocaleString() : 'never'}</td>
            <td><button className="danger small" onClick={() => { if (window.confirm(`Revoke the key ${k.name}? It stops working at once.`)) revoke.mutate(k.id); }}>Revoke</button></td></tr>
        ))}</tbody>
      </table>
    </section>
  );
}

function Webhooks() {
  const qc = useQueryClient();
  const hooks = useQuery({ queryKey: ['webhooks'], queryFn: integrationsApi.webhooks });
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<string[]>([...EVENTS]);
  const [secret, setSecret] = useState<string | null>(null);
  const invalidate = () => void qc.invalidateQueries({ queryKey: ['webhooks'] });
  const create = useMutation({
    mutationFn: () => integrationsApi.createWebhook({ url, events }),
    onSuccess: (made) => { setSecret(made.secret); setUrl(''); invalidate(); },
  });
  const remove = useMutation({ mutationFn: integrationsApi.deleteWebhook, onSuccess: invalidate });
  const toggle = (ev: string) => setEvents((cur) => (cur.includes(ev) ? cur.filter((x) => x !== ev) : [...cur, ev]));
  return (
    <section className="card">
      <h2>Webhooks</h2>
      <p className="small muted">Events are signed per the Standard Webhooks spec with the endpoint's secret, shown once.</p>
      <form className="row" onSubmit={(e) => { e.preventDefault(); if (url && events.length) create.mutate(); }}>
        <input aria-label="Webhook URL" placeholder="https://example.com/hooks/aico" value={url} onChange={(e) => setUrl(e.target.value)} />
        <button className="primary" type="submit" disabled={!url || !events.length || create.isPending}>Add webhook</button>
      </form>
      <fieldset className="row small" aria-label="Webhook events">
        {EVENTS.map((ev) => <label key={ev}><input type="checkbox" checked={events.includes(ev)} onChange={() => toggle(ev)} /> {ev}</label>)}
      </fieldset>
      {secret && <p data-testid="new-secret">Signing secret (copy it now, it is not shown again): <code className="mono">{secret}</code></p>}
      <ErrorNote error={create.error} context="The webhook was not added" />
      <ErrorNote error={hooks.error} context="The webhooks could not be loaded" />
      <ErrorNote error={remove.error} context="The webhook was not deleted" />
      {(hooks.data?.items ?? []).map((h) => <WebhookCard key={h.id} hook={h} onDelete={() => remove.mutate(h.id)} />)}
    </section>
  );
}

function WebhookCard({ hook, onDelete }: { hook: Webhook; onDelete: () => void }) {
  const qc = useQueryClient();
  const deliveries = useQuery({ queryKey: ['deliveries', hook.id], queryFn: () => integrationsApi.deliveries(hook.id), refetchInterval: 2000 });
  const redeliver = useMutation({
    mutationFn: (deliveryId: string) => integrationsApi.redeliver(hook.id, deliveryId),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['deliveries', hook.id] }),
  });
  return (
    <div className="card" data-testid={`webhook-${hook.id}`}>
      <div className="row"><strong className="mono">{hook.url}</strong><span className="small muted">{hook.events.join(', ')}</span>
        <button className="danger small" onClick={() => { if (window.confirm(`Delete the webhook to ${hook.url}?`)) onDelete(); }}>Delete</button></div>
      <ErrorNote error={deliveries.error} context="The deliveries could not be loaded" />
      <ErrorNote error={redeliver.error} context="The delivery was not queued again" />
      <table className="table" data-testid="deliveries-table">
        <thead><tr><th>Event</th><th>Status</th><th>Attempts (status, latency)</th><th>From the event</th><th /></tr></thead>
        <tbody>{(deliveries.data?.items ?? []).map((d) => (
          <tr key={d.id} data-testid={`delivery-${d.event}`}>
            <td className="mono">{d.event}</td><td>{d.status}</td>
            <td className="small">{d.attempts.map((a) => `${a.status_code ?? a.error ?? '—'} (${a.latency_ms.toFixed(0)} ms)`).join(', ') || '—'}</td>
            <td className="small muted">{d.delivery_latency_ms !== null ? `${d.delivery_latency_ms.toFixed(0)} ms` : '—'}</td>
            <td><button className="small" onClick={() => redeliver.mutate(d.id)}>Redeliver</button></td>
          </tr>
        ))}</tbody>
      </table>
    </div>
  );
}
