/** Test console: have the flow phone someone from one of the organization's numbers (POST /v1/calls). */
import { useMutation, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router-dom';
import { phoneApi, type PlacedCall } from '../api/phone';
import { ErrorNote } from '../components/ErrorNote';

export function CallPanel({ flowId }: { flowId: string }) {
  const numbers = useQuery({ queryKey: ['phone-numbers'], queryFn: phoneApi.numbers, retry: false });
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [placed, setPlaced] = useState<PlacedCall | null>(null);
  const call = useMutation({ mutationFn: phoneApi.placeCall, onSuccess: setPlaced, onMutate: () => setPlaced(null) });
  const fromNumber = from || numbers.data?.items[0]?.number || '';
  if (numbers.data && !numbers.data.items.length) {
    return <section className="card"><h2>Phone call</h2><p className="muted">No phone numbers yet: <Link to="/phone">add one</Link> to call out.</p></section>;
  }
  return (
    <section className="card">
      <h2>Phone call</h2>
      <form className="row" onSubmit={(e) => { e.preventDefault(); call.mutate({ flow_id: flowId, to: to.trim(), from_number: fromNumber }); }}>
        <select aria-label="Call from" value={fromNumber} onChange={(e) => setFrom(e.target.value)}>
          {(numbers.data?.items ?? []).map((n) => <option key={n.id} value={n.number}>{n.number} ({n.provider})</option>)}
        </select>
        <input aria-label="Call to" placeholder="+12125550123" value={to} onChange={(e) => setTo(e.target.value)} />
        <button className="primary" type="submit" disabled={!fromNumber || !to.trim() || call.isPending}>{call.isPending ? 'Calling…' : 'Call'}</button>
      </form>
      <ErrorNote error={call.error} context="The call was not placed" />
      {placed && <p role="status">Calling {placed.to} from {placed.from_number}: {placed.status}. <Link to={`/sessions/${placed.session_id}`}>Session</Link></p>}
    </section>
  );
}
