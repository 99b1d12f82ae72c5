/** Every node type the schema allows; drag one onto the canvas (or click to add it). */
import type { NodeTypeSpec } from '../flows/schema';
import { PALETTE_MIME } from './Canvas';

export function Palette({ specs, onAdd }: { specs: NodeTypeSpec[]; onAdd: (type: string) => void }) {
  return (
    <aside className="palette" aria-label="Node palette">
      <h3>Nodes</h3>
      {specs.map((s) => (
        <div
          key={s.type}
          className={`palette-item type-${s.type}`}
          data-testid={`palette-${s.type}`}
          draggable
          title={s.description}
          onDragStart={(e) => { e.dataTransfer.setData(PALETTE_MIME, s.type); e.dataTransfer.setData('text/plain', s.type); e.dataTransfer.effectAllowed = 'move'; }}
          onDoubleClick={() => onAdd(s.type)}
        >
          <strong>{s.title}</strong>
          <span className="small muted">{s.description}</span>
        </div>
      ))}
      <p className="small muted">Drag onto the canvas, or double-click to add. Connect a node's right handle to another's left handle.</p>
    </aside>
  );
}
