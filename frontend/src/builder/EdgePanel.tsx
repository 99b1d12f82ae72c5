/** Side panel for one edge: its condition and its order among the edges leaving the same node. */
import type { FlowEdge } from '../api/types';

export function EdgePanel({ edge, index, siblings, onWhen, onMove, onDelete }: {
  edge: FlowEdge;
  index: number;
  siblings: number;
  onWhen: (when: string) => void;
  onMove: (delta: -1 | 1) => void;
  onDelete: () => void;
}) {
  return (
    <div className="panel" data-testid="edge-panel">
      <h3>Edge {edge.from} → {edge.to}</h3>
      <label>
        Condition (<code>when</code>)
        <input aria-label="Edge condition" value={edge.when ?? ''} placeholder="empty: the default path" onChange={(e) => onWhen(e.target.value)} />
      </label>
      <p className="small muted">Edges leaving a node are tried in order; the first whose condition holds is taken. An edge without a condition is the default.</p>
      {siblings > 1 && (
        <div className="row">
          <button onClick={() => onMove(-1)}>Try earlier</button>
          <button onClick={() => onMove(1)}>Try later</button>
          <span className="small muted">#{index + 1} of {siblings}</span>
        </div>
      )}
      <button className="danger" onClick={onDelete}>Delete edge</button>
    </div>
  );
}
