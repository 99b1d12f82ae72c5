/** The flows of the organization: list, create, delete. */
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate } from 'react-router-dom';
import { flowsApi, useFlows } from '../api/flows';
import type { FlowDocument } from '../api/types';
import { ErrorNote } from '../components/ErrorNote';

/** A new flow starts with its one `start` node. */
export function emptyFlowDocument(name: string, description?: string): FlowDocument {
  return { name, ...(description ? { description } : {}), nodes: [{ id: 'start', type: 'start', position: { x: 0, y: 120 } }], edges: [] };
}

export function FlowsPage() {
  const flows = useFlows();
  const qc = useQueryClient();
  const nav = useNavigate();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const create = useMutation({
    mutationFn: () => flowsApi.create({ name: name.trim(), ...(description.trim() ? { description: description.trim() } : {}), document: emptyFlowDocument(name.trim(), description.trim() || undefined) }),
    onSuccess: (f) => { void qc.invalidateQueries({ queryKey: ['flows'] }); nav(`/flows/${f.id}`); },
  });
  const remove = useMutation({
    mutationFn: (id: string) => flowsApi.remove(id),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['flows'] }),
  });
  return (
    <div>
      <h1>Flows</h1>
      <form className="card row" onSubmit={(e) => { e.preventDefault(); if (name.trim()) create.mutate(); }}>
        <input aria-label="New flow name" placeholder="Name of a new flow" value={name} onChange={(e) => setName(e.target.value)} />
        <input aria-label="New flow description" placeholder="Description (optional)" value={description} onChange={(e) => setDescription(e.target.value)} />
        <button type="submit" className="primary" disabled={!name.trim() || create.isPending}>{create.isPending ? 'Creating…' : 'Create flow'}</button>
      </form>
      <ErrorNote error={create.error} context="The flow was not created" />
      <ErrorNote error={remove.error} context="The flow was not deleted" />
      <ErrorNote error={flows.error} context="The flows could not be loaded" />
      {flows.isPending && <p className="muted">Loading…</p>}
      {flows.data && !flows.data.items.length && <p className="muted">No flows yet: create one above.</p>}
      {flows.data && flows.data.items.length > 0 && (
        <table className="table" data-testid="flows-table">
          <thead><tr><th>Name</th><th>Description</th><th>Published</th><th>Updated</th><th /></tr></thead>
          <tbody>
            {flows.data.items.map((f) => (
              <tr key={f.id}>
                <td><Link to={`/flows/${f.id}`}>{f.name}</Link></td>
                <td className="muted">{f.description}</td>
                <td>{f.latest_version ? `v${f.latest_version}` : <span className="muted">draft only</span>}</td>
                <td className="small muted">{f.updated_at ? new Date(f.updated_at).toLocaleString() : ''}</td>
                <td className="row">
                  <Link to={`/flows/${f.id}/test`}>Test</Link>
                  <Link to={`/sessions?flow_id=${encodeURIComponent(f.id)}`}>Sessions</Link>
                  <button className="danger small" onClick={() => { if (window.confirm(`Delete the flow “${f.name}”? Its versions go too.`)) remove.mutate(f.id); }}>Delete</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
