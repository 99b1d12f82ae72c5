/** The differences between two versions of a flow, in words. */
import { diffFlows, formatEdge, formatValue, isEmptyDiff } from '../flows/diff';
import type { FlowDocument } from '../api/types';

export function DiffView({ before, after, labels }: { before: FlowDocument; after: FlowDocument; labels: [string, string] }) {
  const d = diffFlows(before, after);
  if (isEmptyDiff(d)) return <p className="muted" data-testid="diff-empty">No differences between {labels[0]} and {labels[1]}{d.nodesMoved.length ? ` (nodes moved: ${d.nodesMoved.join(', ')})` : ''}.</p>;
  return (
    <div className="diff" data-testid="diff">
      <p className="small muted">From {labels[0]} to {labels[1]}:</p>
      <ul>
        {d.documentChanges.map((c) => <li key={`doc-${c.field}`} className="changed">Flow {c.field}: <del>{formatValue(c.before)}</del> → <ins>{formatValue(c.after)}</ins></li>)}
        {d.nodesAdded.map((n) => <li key={`add-${n.id}`} className="added">+ node {n.id} ({n.type})</li>)}
        {d.nodesRemoved.map((n) => <li key={`rm-${n.id}`} className="removed">− node {n.id} ({n.type})</li>)}
        {d.nodesChanged.map((n) => (
          <li key={`ch-${n.id}`} className="changed">~ node {n.id}:
            <ul>{n.changes.map((c) => <li key={c.field}>{c.field}: <del>{formatValue(c.before)}</del> → <ins>{formatValue(c.after)}</ins></li>)}</ul>
          </li>
        ))}
        {d.edgesAdded.map((e, i) => <li key={`ea-${i}`} className="added">+ edge {formatEdge(e)}</li>)}
        {d.edgesRemoved.map((e, i) => <li key={`er-${i}`} className="removed">− edge {formatEdge(e)}</li>)}
        {d.edgesReordered.map((n) => <li key={`eo-${n}`} className="changed">~ order of edges leaving {n}</li>)}
        {d.nodesMoved.length > 0 && <li className="muted">moved on the canvas: {d.nodesMoved.join(', ')}</li>}
      </ul>
    </div>
  );
}
