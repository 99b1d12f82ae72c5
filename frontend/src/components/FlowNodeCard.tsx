/** How a node looks on the canvas: its type, id, a summary, and the validation errors that concern it. */
import { Handle, Position, type NodeProps, type Node } from '@xyflow/react';
import { nodeSummary, type NodeData } from '../flows/graph';

export function FlowNodeCard({ id, data, selected }: NodeProps<Node<NodeData>>) {
  const t = data.nodeType;
  const errors = data.errors ?? [];
  return (
    <div className={`flow-node type-${t}${selected ? ' selected' : ''}${errors.length ? ' has-errors' : ''}`} data-testid={`node-${id}`} data-node-type={t}>
      {t !== 'start' && <Handle type="target" position={Position.Left} data-testid={`in-${id}`} />}
      <div className="flow-node-type">{t}</div>
      <div className="flow-node-id">{typeof data.fields.label === 'string' && data.fields.label ? data.fields.label : id}</div>
      {nodeSummary(t, data.fields) && <div className="flow-node-summary">{nodeSummary(t, data.fields)}</div>}
      {errors.map((e, i) => <div className="flow-node-error" key={i} role="alert">⚠ {e}</div>)}
      {t !== 'end' && <Handle type="source" position={Position.Right} data-testid={`out-${id}`} />}
    </div>
  );
}
