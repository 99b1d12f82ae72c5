/** WhatsApp: the organization's numbers (Meta Cloud API), the flow each answers with, and their errors. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useFlows } from '../api/flows';
import { whatsappApi, type NewWhatsAppNumber } from '../api/whatsapp';
import { ErrorNote } from '../components/ErrorNote';
import { SECRET_NAME } from './SecretsPage';

const EMPTY: NewWhatsAppNumber = {
  phone_number_id: '', display_number: '', flow_id: '', verify_token: '',
  app_secret_secret: 'META_APP_SECRET', access_token_secret: 'META_ACCESS_TOKEN', voice_replies: false,
};

export function WhatsAppPage() {
  const qc = useQueryClient();
  const numbers = useQuery({ queryKey: ['whatsapp-numbers'], queryFn: whatsappApi.numbers });
  const flows = useFlows();
  const [form, setForm] = useState<NewWhatsAppNumber>(EMPTY);
  const invalidate = () => void qc.invalidateQueries({ queryKey: ['whatsapp-numbers'] });
  const create = useMutation({ mutationFn: whatsappApi.create, onSuccess: () => { setForm(EMPTY); invalidate(); } });
  const toggle = useMutation({ mutationFn: (v: { id: string; voice: boolean }) => whatsappApi.update(v.id, { voice_replies: v.voice }), onSuccess: invalidate });
  const remove = useMutation({ mutationFn: whatsappApi.remove, onSuccess: invalidate });
  const field = (key: keyof NewWhatsAppNumber) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setForm({ ...form, [key]: e.target.value });
  const ready = /^[0-9A-Za-z_-]{1,64}$/.test(form.phone_number_id) && form.display_number && form.flow_id
    && form.verify_token.length >= 8 && SECRET_NAME.test(form.app_secret_secret) && SECRET_NAME.test(form.access_token_secret);
  const flowName = (id: string) => flows.data?.items.find((f) => f.id === id)?.name ?? id;
  return (
    <div>
      <h1>WhatsApp</h1>
      <section className="card">
        <h2>Add a number</h2>
        <p className="small muted">Meta calls <span className="mono">/v1/channels/whatsapp/webhook</span>; use the same verify token there. The app secret and access token are the names of stored secrets.</p>
        <form className="row" onSubmit={(e) => { e.preventDefault(); if (ready) create.mutate(form); }}>
          <input aria-label="Phone number id" placeholder="phone number id" value={form.phone_number_id} onChange={field('phone_number_id')} />
          <input aria-label="Display number" placeholder="+1 555 0100" value={form.display_number} onChange={field('display_number')} />
          <select aria-label="Flow" value={form.flow_id} onChange={field('flow_id')}>
            <option value="">flow…</option>
            {(flows.data?.items ?? []).map((f) => <option key={f.id} value={f.id}>{f.name}</option>)}
          </select>
          <input aria-label="Verify token" type="password" autoComplete="new-password" placeholder="verify token (8+)" value={form.verify_token} onChange={field('verify_token')} />
          <input aria-label="App secret name" value={form.app_secret_secret} onChange={field('app_secret_secret')} />
          <input aria-label="Access token name" value={form.access_token_secret} onChange={field('access_token_secret')} />
          <button className="primary" type="submit" disabled={!ready || create.isPending}>Add number</button>
        </form>
        <ErrorNote error={create.error} context="The number was not added" />
      </section>
      <section className="card">
        <h2>Numbers</h2>
        <ErrorNote error={numbers.error} context="The numbers could not be loaded" />
        <ErrorNote error={toggle.error ?? remove.error} context="The number was not changed" />
        {numbers.data && !numbers.data.items.length && <p className="muted">No numbers yet.</p>}
        {numbers.data && numbers.data.items.length > 0 && (
          <table className="table" data-testid="whatsapp-numbers">
            <thead><tr><th>Number</th><th>Phone number id</th><th>Flow</th><th>Secrets</th><th>Voice replies</th><th>Status</th><th /></tr></thead>
            <tbody>{numbers.data.items.map((n) => (
              <tr key={n.id}>
                <td>{n.display_number}</td><td className="mono">{n.phone_number_id}</td><td>{flowName(n.flow_id)}</td>
                <td className="small mono">{n.app_secret_secret}, {n.access_token_secret}</td>
                <td><input type="checkbox" aria-label={`Voice replies for ${n.display_number}`} checked={n.voice_replies} onChange={(e) => toggle.mutate({ id: n.id, voice: e.target.checked })} /></td>
                <td>{n.last_error ? <span className="error-text">{n.last_error.code ?? ''} {n.last_error.message}</span> : <span className="ok-text">ok</span>}</td>
                <td><button className="danger small" onClick={() => { if (window.confirm(`Remove ${n.display_number}? Its messages will no longer be answered.`)) remove.mutate(n.id); }}>Remove</button></td>
              </tr>
            ))}</tbody>
          </table>
        )}
      </section>
    </div>
  );
}
