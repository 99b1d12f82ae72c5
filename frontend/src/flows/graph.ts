/** Conversion between a flow document and the builder's graph (React Flow nodes and edges). */
import type { FlowDocument, FlowEdge, FlowNode } from '../api/types';

export type NodeData = {
  nodeType: string;
  fields: Record<string, unknown>;
  errors?: string[];
  [k: string]: unknown;
};

export type GraphNode = { id: string; type: 'aico'; position: { x: number; y: number }; data: NodeData; selected?: boolean };
export type GraphEdge = { id: string; source: string; target: string; label?: string; data: { when?: string | null } };
export type Graph = { nodes: GraphNode[]; edges: GraphEdge[] };

const COLUMN_WIDTH = 240;
const ROW_HEIGHT = 130;

/** The flow document's nodes and edges as a graph; nodes without a position get a layered layout. */
export function documentToGraph(doc: FlowDocument): Graph {
  const layout = autoLayout(doc);
  const nodes: GraphNode[] = doc.nodes.map((n) => {
    const { id, type, position, ...fields } = n;
    return {
      id,
      type: 'aico',
      position: position && Number.isFinite(position.x) && Number.isFinite(position.y) ? { x: position.x, y: position.y } : layout[id] ?? { x: 0, y: 0 },
      data: { nodeType: type, fields },
    };
  });
  const edges: GraphEdge[] = doc.edges.map((e, i) => ({
    id: edgeId(e, i),
    source: e.from,
    target: e.to,
    ...(e.when ? { label: e.when } : {}),
    data: { when: e.when ?? null },
  }));
  return { nodes, edges };
}

/** Write the graph back into the document, keeping every other part of the document as it was. */
export function graphToDocument(graph: Graph, base: FlowDocument): FlowDocument {
  const nodes: FlowNode[] = graph.nodes.map((n) => ({
    id: n.id,
    type: n.data.nodeType,
    ...n.data.fields,
    position: { x: Math.round(n.position.x), y: Math.round(n.position.y) },
  }));
  const edges: FlowEdge[] = graph.edges.map((e) => {
    const when = e.data?.when;
    return when ? { from: e.source, to: e.target, when } : { from: e.source, to: e.target };
  });
  return { ...base, nodes, edges };
}

export function edgeId(e: FlowEdge, index: number): string {
  return `e${index}:${e.from}->${e.to}`;
}

/** A fresh node id for a type that no node in the document uses yet: `say_1`, `say_2`, … */
export function newNodeId(doc: FlowDocument, type: string): string {
  const used = new Set(doc.nodes.map((n) => n.id));
  for (let i = 1; ; i++) {
    const id = `${type}_${i}`;
    if (!used.has(id)) return id;
  }
}

/** Layered layout: each node's column is its distance from `start` (breadth first); unreachable nodes go last. */
export function autoLayout(doc: FlowDocument): Record<string, { x: number; y: number }> {
  const out: Record<string, { x: number; y: number }> = {};
  const adj = new Map<string, string[]>();
  for (const e of doc.edges) adj.set(e.from, [...(adj.get(e.from) ?? []), e.to]);
  const start = doc.nodes.find((n) => n.type === 'start') ?? doc.nodes[0];
  const depth = new Map<string, number>();
  if (start) {
    depth.set(start.id, 0);
    const queue = [start.id];
    while (queue.length) {
      const cur = queue.shift()!;
      for (const nxt of adj.get(cur) ?? []) {
        if (!depth.has(nxt)) { depth.set(nxt, depth.get(cur)! + 1); queue.push(nxt); }
      }
    }
  }
  const maxDepth = Math.max(0, ...depth.values());
  const rows = new Map<number, number>();
  for (const n of doc.nodes) {
    const d = depth.get(n.id) ?? maxDepth + 1;
    const r = rows.get(d) ?? 0;
    rows.set(d, r + 1);
    out[n.id] = { x: d * COLUMN_WIDTH, y: r * ROW_HEIGHT };
  }
  return out;
}

/** Apply a field edit to one node of the document. */
export function updateNodeFields(doc: FlowDocument, nodeId: string, fields: Record<string, unknown>): FlowDocument {
  return {
    ...doc,
    nodes: doc.nodes.map((n) => (n.id === nodeId ? { id: n.id, type: n.type, ...fields, ...(n.position ? { position: n.position } : {}) } : n)),
  };
}

/** Rename a node, rewriting the edges that touch it. Returns null when the new id is taken or empty. */
export function renameNode(doc: FlowDocument, oldId: string, newId: string): FlowDocument | null {
  const id = newId.trim();
  if (!id || (id !== oldId && doc.nodes.some((n) => n.id === id))) return null;
  return {
    ...doc,
    nodes: doc.nodes.map((n) => (n.id === oldId ? { ...n, id } : n)),
    edges: doc.edges.map((e) => ({ ...e, from: e.from === oldId ? id : e.from, to: e.to === oldId ? id : e.to })),
  };
}

export function removeNodes(doc: FlowDocument, ids: string[]): FlowDocument {
  const gone = new Set(ids);
  return { ...doc, nodes: doc.nodes.filter((n) => !gone.has(n.id)), edges: doc.edges.filter((e) => !gone.has(e.from) && !gone.has(e.to)) };
}

/** Remove edges by their graph id (index and ends); an id that no longer matches is ignored. */
export function removeEdgesById(doc: FlowDocument, ids: string[]): FlowDocument {
  const gone = new Set(ids);
  const edges = doc.edges.filter((e, i) => !gone.has(edgeId(e, i)));
  return edges.length === doc.edges.length ? doc : { ...doc, edges };
}

export function addNode(doc: FlowDocument, node: FlowNode): FlowDocument {
  return { ...doc, nodes: [...doc.nodes, node] };
}

/** Connect two nodes; a second identical edge (same ends, no condition) is not added. */
export function connect(doc: FlowDocument, from: string, to: string): FlowDocument {
  if (doc.edges.some((e) => e.from === from && e.to === to && !e.when)) return doc;
  return { ...doc, edges: [...doc.edges, { from, to }] };
}

/** Move an edge one step earlier or later among the edges leaving the same node (they are tried in order). */
export function moveEdge(doc: FlowDocument, index: number, delta: -1 | 1): FlowDocument {
  const edge = doc.edges[index];
  if (!edge) return doc;
  const siblings = doc.edges.map((e, i) => ({ e, i })).filter(({ e }) => e.from === edge.from).map(({ i }) => i);
  const pos = siblings.indexOf(index);
  const other = siblings[pos + delta];
  if (other === undefined) return doc;
  const edges = [...doc.edges];
  [edges[index], edges[other]] = [edges[other], edges[index]];
  return { ...doc, edges };
}

export function moveNodes(doc: FlowDocument, positions: Record<string, { x: number; y: number }>): FlowDocument {
  return {
    ...doc,
    nodes: doc.nodes.map((n) => (positions[n.id] ? { ...n, position: { x: Math.round(positions[n.id].x), y: Math.round(positions[n.id].y) } } : n)),
  };
}

/** Short text shown on a node card: the most telling field of its type. */
export function nodeSummary(type: string, fields: Record<string, unknown>): string {
  const pick = (k: string) => (typeof fields[k] === 'string' ? (fields[k] as string) : '');
  const s =
    type === 'say' ? pick('text')
    : type === 'llm' ? pick('instructions')
    : type === 'listen' ? (pick('into') ? `→ ${pick('into')}` : '')
    : type === 'collect' ? pick('prompt')
    : type === 'http' ? `${pick('method') || 'GET'} ${pick('url')}`.trim()
    : type === 'transfer' ? pick('to')
    : type === 'end' ? pick('reason')
    : type === 'subflow' ? pick('flow_id')
    : '';
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}
