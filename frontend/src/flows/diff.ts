/** Differences between two flow documents, for the version history. */
import type { FlowDocument, FlowEdge, FlowNode } from '../api/types';

export type FieldChange = { field: string; before: unknown; after: unknown };
export type NodeChange = { id: string; type: string; changes: FieldChange[] };
export type FlowDiff = {
  nodesAdded: FlowNode[];
  nodesRemoved: FlowNode[];
  nodesChanged: NodeChange[];
  nodesMoved: string[];
  edgesAdded: FlowEdge[];
  edgesRemoved: FlowEdge[];
  edgesReordered: string[];
  documentChanges: FieldChange[];
};

/** Stable JSON: object keys sorted, so that key order never counts as a difference. */
export function stableStringify(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`).join(',')}}`;
}

const same = (a: unknown, b: unknown) => stableStringify(a) === stableStringify(b);
const edgeKey = (e: FlowEdge) => `${e.from}→${e.to}${e.when ? ` when ${e.when}` : ''}`;

function fieldChanges(a: Record<string, unknown>, b: Record<string, unknown>, ignore: string[]): FieldChange[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !ignore.includes(k)).sort();
  return keys.filter((k) => !same(a[k] ?? null, b[k] ?? null)).map((k) => ({ field: k, before: a[k], after: b[k] }));
}

export function diffFlows(before: FlowDocument, after: FlowDocument): FlowDiff {
  const bNodes = new Map(before.nodes.map((n) => [n.id, n]));
  const aNodes = new Map(after.nodes.map((n) => [n.id, n]));
  const nodesAdded = after.nodes.filter((n) => !bNodes.has(n.id));
  const nodesRemoved = before.nodes.filter((n) => !aNodes.has(n.id));
  const nodesChanged: NodeChange[] = [];
  const nodesMoved: string[] = [];
  for (const n of after.nodes) {
    const old = bNodes.get(n.id);
    if (!old) continue;
    const changes = fieldChanges(old, n, ['id', 'position']);
    if (changes.length) nodesChanged.push({ id: n.id, type: n.type, changes });
    if (!same(old.position ?? null, n.position ?? null)) nodesMoved.push(n.id);
  }
  const bEdges = before.edges.map(edgeKey);
  const aEdges = after.edges.map(edgeKey);
  const count = (xs: string[]) => xs.reduce((m, k) => m.set(k, (m.get(k) ?? 0) + 1), new Map<string, number>());
  const bCount = count(bEdges);
  const aCount = count(aEdges);
  const edgesAdded: FlowEdge[] = [];
  const edgesRemoved: FlowEdge[] = [];
  const seenA = new Map<string, number>();
  after.edges.forEach((e) => {
    const k = edgeKey(e); const n = (seenA.get(k) ?? 0) + 1; seenA.set(k, n);
    if (n > (bCount.get(k) ?? 0)) edgesAdded.push(e);
  });
  const seenB = new Map<string, number>();
  before.edges.forEach((e) => {
    const k = edgeKey(e); const n = (seenB.get(k) ?? 0) + 1; seenB.set(k, n);
    if (n > (aCount.get(k) ?? 0)) edgesRemoved.push(e);
  });
  // Order of outgoing edges matters (they are tried in order): report nodes whose kept edges changed order.
  const edgesReordered: string[] = [];
  const sources = new Set(after.edges.map((e) => e.from));
  for (const src of sources) {
    const kept = (xs: FlowEdge[], other: Map<string, number>) => xs.filter((e) => e.from === src && other.has(edgeKey(e))).map(edgeKey);
    const ob = kept(before.edges, aCount);
    const oa = kept(after.edges, bCount);
    if (ob.length === oa.length && ob.join('|') !== oa.join('|')) edgesReordered.push(src);
  }
  const documentChanges = fieldChanges(before, after, ['nodes', 'edges']);
  return { nodesAdded, nodesRemoved, nodesChanged, nodesMoved, edgesAdded, edgesRemoved, edgesReordered, documentChanges };
}

export function isEmptyDiff(d: FlowDiff, { ignoreMoves = true } = {}): boolean {
  return !d.nodesAdded.length && !d.nodesRemoved.length && !d.nodesChanged.length && (ignoreMoves || !d.nodesMoved.length)
    && !d.edgesAdded.length && !d.edgesRemoved.length && !d.edgesReordered.length && !d.documentChanges.length;
}

export function formatEdge(e: FlowEdge): string {
  return edgeKey(e);
}

export function formatValue(v: unknown): string {
  if (v === undefined) return '—';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
