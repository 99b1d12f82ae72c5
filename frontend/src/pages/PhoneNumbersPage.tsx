/** Phone numbers: the organization's numbers, the flow each answers with, and recent calls. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router-dom';
import { useFlows } from '../api/flows';
import { parseSettings, phoneApi, type PhoneProvider } from '../api/phone';
import { ErrorNote } from '../components/ErrorNote';

const E164 = /^\+[1-9][0-9]{5,14}$/;
// What each carrier's settings name (a key ending in _secret names a stored secret).
const SETTINGS_HINT: Record<PhoneProvider, string> = {
  twilio: 'account_sid=AC…\nauth_token_secret=TWILIO_AUTH_TOKEN',
  telnyx: 'public_key=<the account\'s webhook public key, base64>',
  livekit: 'sip_address=sip.telnyx.com\nsip_username=…\nsip_password_secret=SIP_TRUNK_PASSWORD',
};

export function PhoneNumbersPage() {
  const qc = useQueryClient();
  const numbers = useQuery({ queryKey: ['phone-numbers'], queryFn: phoneApi.numbers });
  const calls = useQuery({ queryKey: ['phone-calls'], queryFn: phoneApi.calls, refetchInterval: 5000 });
  const flows = useFlows();
  const [number, setNumber] = useState('');
  const [flowId, setFlowId] = useState('');
  const [provider, setProvider] = useState<PhoneProvider>('twilio');
  const [settings, setSettings] = useState('');
  const [settingsError, setSettingsError] = useState<string | null>(null);
  const invalidate = () => void qc.invalidateQueries({ queryKey: ['phone-numbers'] });
  const create = useMutation({
    mutationFn: phoneApi.create,
    onSuccess: () => { setNumber(''); setSettings(''); invalidate(); },
  });
  const remove = useMutation({ mutationFn: phoneApi.remove, onSuccess: invalidate });
  const ready = E164.test(number.trim()) && flowId !== '';
  const flowName = (id: string) => flows.data?.items.find((f) => f.id === id)?.name ?? id;
  const numberOf = (id: string | null) => numbers.data?.items.find((n) => n.id === id)?.number ?? '';
  const submit = () => {
    let parsed: Record<string, string>;
    try { parsed = parseSettings(settings); } catch (e) { setSettingsError((e as Error).message); return; }
    setSettingsError(null);
    create.mutate({ number: number.trim(), flow_id: flowId, provider, settings: parsed });
  };
  return (
    <div>
      <h1>Phone numbers</h1>
      <section className="card">
        <h2>Add a number</h2>
        <p className="small muted">
          Twilio calls <span className="mono">/v1/channels/twilio/voice</span>, Telnyx <span className="mono">/v1/channels/telnyx/voice</span>;
          LiveKit numbers get their SIP trunks from the server. Settings are <span className="mono">key=value</span> lines; a key ending in
          <span className="mono"> _secret</span> names a stored secret.
        </p>
        <form className="row" onSubmit={(e) => { e.preventDefault(); if (ready) submit(); }}>
          <input aria-label="Number" placeholder="+15551230000" value={number} onChange={(e) => setNumber(e.target.value)} />
          <select aria-label="Provider" value={provider} onChange={(e) => setProvider(e.target.value as PhoneProvider)}>
            <option value="twilio">Twilio</option>
            <option value="telnyx">Telnyx</option>
            <option value="livekit">LiveKit SIP</option>
          </select>
          <select aria-label="Flow" value={flowId} onChange={(e) => setFlowId(e.target.value)}>
            <option value="">flow…</option>
            {(flows.data?.items ?? []).map((f) => <option key={f.id} value={f.id}>{f.name}</option>)}
          </select>
          <textarea aria-label="Carrier settings" rows={3} cols={40} placeholder={SETTINGS_HINT[provider]} value={settings}
            onChange={(e) => setSettings(e.target.value)} />
          <button className="primary" type="submit" disabled={!ready || create.isPending}>Add number</button>
        </form>
        {settingsError && <div className="error" role="alert">Carrier settings: {settingsError}</div>}
        <ErrorNote error={create.error} context="The number was not added" />
      </section>
      <section className="card">
        <h2>Numbers</h2>
        <ErrorNote error={numbers.error} context="The numbers could not be loaded" />
        <ErrorNote error={remove.error} context="The number was not removed" />
        {numbers.data && !numbers.data.items.length && <p className="muted">No numbers yet.</p>}
        {numbers.data && numbers.data.items.length > 0 && (
          <table className="table" data-testid="phone-numbers">
            <thead><tr><th>Number</th><th>Provider</th><th>Answers with</th><th>Settings</th><th /></tr></thead>
            <tbody>{numbers.data.items.map((n) => (
              <tr key={n.id}>
                <td className="mono">{n.number}</td><td>{n.provider}</td>
                <td><Link to={`/flows/${n.flow_id}`}>{flowName(n.flow_id)}</Link></td>
                <td className="small mono">{Object.entries(n.settings).map(([k, v]) => `${k}=${String(v)}`).join(', ')}</td>
                <td><button className="danger small" onClick={() => { if (window.confirm(`Remove ${n.number}? Its calls will no longer be answered.`)) remove.mutate(n.id); }}>Remove</button></td>
              </tr>
            ))}</tbody>
          </table>
        )}
      </section>
      <section className="card">
        <h2>Recent calls</h2>
        <ErrorNote error={calls.error} context="The calls could not be loaded" />
        {calls.data && !calls.data.items.length && <p className="muted">No calls yet.</p>}
        {calls.data && calls.data.items.length > 0 && (
          <table className="table" data-testid="phone-calls">
            <thead><tr><th>When</th><th>Direction</th><th>From</th><th>To</th><th>Number</th><th>Status</th><th>Session</th></tr></thead>
            <tbody>{calls.data.items.map((c) => (
              <tr key={c.id}>
                <td className="small">{new Date(c.created_at).toLocaleString()}</td><td>{c.direction}</td>
                <td className="mono">{c.from_number}</td><td className="mono">{c.to_number}</td><td className="mono">{numberOf(c.number_id)}</td>
                <td>{c.failure ? <span className="error-text" title={c.failure.message}>{c.status}: {c.failure.error}</span> : c.status}</td>
                <td>{c.session_id ? <Link to={`/sessions/${c.session_id}`}>open</Link> : ''}</td>
              </tr>
            ))}</tbody>
          </table>
        )}
      </section>
    </div>
  );
}
