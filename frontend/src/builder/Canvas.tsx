/** The builder canvas: React Flow in controlled mode over the flow document, with drop-to-place from the palette. */
import {
  Background, Controls, MiniMap, ReactFlow, applyEdgeChanges, applyNodeChanges, useReactFlow,
  type Connection, type Edge, type EdgeChange, type Node, type NodeChange,
} from '@xyflow/react';
import { useEffect, useMemo, useState, type DragEvent } from 'react';
import type { FlowDocument } from '../api/types';
import { FlowNodeCard } from '../components/FlowNodeCard';
import { documentToGraph, type NodeData } from '../flows/graph';

export const PALETTE_MIME = 'application/x-aico-node-type';
const nodeTypes = { aico: FlowNodeCard };

export type CanvasProps = {
  doc: FlowDocument;
  nodeErrors: Record<string, string[]>;
  selection: { kind: 'node' | 'edge'; id: string } | null;
  onSelect: (s: { kind: 'node' | 'edge'; id: string } | null) => void;
  onMove: (positions: Record<string, { x: number; y: number }>) => void;
  onRemoveNodes: (ids: string[]) => void;
  onRemoveEdges: (ids: string[]) => void;
  onConnect: (from: string, to: string) => void;
  onDropType: (type: string, position: { x: number; y: number }) => void;
};

export function Canvas(p: CanvasProps) {
  const { screenToFlowPosition } = useReactFlow();
  const graph = useMemo(() => documentToGraph(p.doc), [p.doc]);
  const [nodes, setNodes] = useState<Node<NodeData>[]>([]);
  const [edges, setEdges] = useState<Edge[]>([]);

  // The document is the truth; the canvas keeps only transient state (a drag in progress, selection).
  useEffect(() => {
    setNodes(graph.nodes.map((n) => ({
      ...n,
      selected: p.selection?.kind === 'node' && p.selection.id === n.id,
      data: { ...n.data, errors: p.nodeErrors[n.id] ?? [] },
    })));
    setEdges(graph.edges.map((e) => ({
      ...e,
      selected: p.selection?.kind === 'edge' && p.selection.id === e.id,
      className: p.selection?.kind === 'edge' && p.selection.id === e.id ? 'selected' : undefined,
    })));
  }, [graph, p.nodeErrors, p.selection]);

  const onNodesChange = (changes: NodeChange<Node<NodeData>>[]) => {
    setNodes((ns) => applyNodeChanges(changes, ns));
    const moved: Record<string, { x: number; y: number }> = {};
    for (const c of changes) if (c.type === 'position' && c.dragging === false && c.position) moved[c.id] = c.position;
    if (Object.keys(moved).length) p.onMove(moved);
    const removed = changes.filter((c) => c.type === 'remove').map((c) => c.id);
    if (removed.length) p.onRemoveNodes(removed);
  };

  const onEdgesChange = (changes: EdgeChange[]) => {
    setEdges((es) => applyEdgeChanges(changes, es));
    const removed = changes.filter((c) => c.type === 'remove').map((c) => c.id);
    if (removed.length) p.onRemoveEdges(removed);
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    const type = e.dataTransfer.getData(PALETTE_MIME) || e.dataTransfer.getData('text/plain');
    if (!type) return;
    p.onDropType(type, screenToFlowPosition({ x: e.clientX, y: e.clientY }));
  };

  return (
    <div className="canvas" data-testid="canvas" onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; }} onDrop={onDrop}>
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={(c: Connection) => c.source && c.target && c.source !== c.target && p.onConnect(c.source, c.target)}
        onNodeClick={(_, n) => p.onSelect({ kind: 'node', id: n.id })}
        onEdgeClick={(_, e) => p.onSelect({ kind: 'edge', id: e.id })}
        onPaneClick={() => p.onSelect(null)}
        deleteKeyCode={['Delete', 'Backspace']}
        fitView
        fitViewOptions={{ maxZoom: 1 }}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls />
        <MiniMap pannable zoomable />
      </ReactFlow>
    </div>
  );
}
