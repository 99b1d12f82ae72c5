/** Published versions of a flow, and the differences between any two of them (or the draft). */
import { useEffect, useState } from 'react';
import { useVersions } from '../api/flows';
import type { FlowDocument } from '../api/types';
import { ErrorNote } from '../components/ErrorNote';
import { DiffView } from './DiffView';

export function VersionsPanel({ flowId, draft }: { flowId: string; draft: FlowDocument }) {
  const versions = useVersions(flowId);
  const items = [...(versions.data?.items ?? [])].sort((a, b) => b.version - a.version);
  const [a, setA] = useState<string>('');
  const [b, setB] = useState<string>('draft');
  useEffect(() => { if (!a && items.length) setA(String(items[0].version)); }, [a, items]);
  const docOf = (key: string): FlowDocument | undefined => (key === 'draft' ? draft : items.find((v) => String(v.version) === key)?.document);
  const label = (key: string) => (key === 'draft' ? 'the draft' : `v${key}`);
  const before = docOf(a);
  const after = docOf(b);
  return (
    <div className="panel" data-testid="versions-panel">
      <h3>Version history</h3>
      <ErrorNote error={versions.error} context="The versions could not be loaded" />
      {versions.isPending && <p className="muted">Loading…</p>}
      {!versions.isPending && !items.length && <p className="muted">Not published yet.</p>}
      <ul className="versions">
        {items.map((v) => <li key={v.version}><strong>v{v.version}</strong> <span className="small muted">{new Date(v.created_at).toLocaleString()}</span></li>)}
      </ul>
      {items.length > 0 && (
        <>
          <div className="row">
            <label>Compare <select aria-label="Compare from" value={a} onChange={(e) => setA(e.target.value)}>
              {items.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}
              <option value="draft">draft</option>
            </select></label>
            <label>with <select aria-label="Compare to" value={b} onChange={(e) => setB(e.target.value)}>
              <option value="draft">draft</option>
              {items.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}
            </select></label>
          </div>
          {before && after && <DiffView before={before} after={after} labels={[label(a), label(b)]} />}
        </>
      )}
    </div>
  );
}
