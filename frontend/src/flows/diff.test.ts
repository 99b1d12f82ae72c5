import { describe, expect, it } from 'vitest';
import type { FlowDocument } from '../api/types';
import { diffFlows, isEmptyDiff, stableStringify } from './diff';

const v1: FlowDocument = {
  name: 'Support',
  nodes: [
    { id: 'start', type: 'start', position: { x: 0, y: 0 } },
    { id: 'greet', type: 'say', text: 'Hello', position: { x: 200, y: 0 } },
    { id: 'ask', type: 'listen', into: 'q' },
    { id: 'old', type: 'say', text: 'Bye' },
  ],
  edges: [
    { from: 'start', to: 'greet' },
    { from: 'greet', to: 'ask' },
    { from: 'ask', to: 'old', when: "q == 'bye'" },
    { from: 'ask', to: 'greet' },
  ],
};

const v2: FlowDocument = {
  name: 'Support desk',
  nodes: [
    { id: 'start', type: 'start', position: { x: 0, y: 0 } },
    { position: { x: 250, y: 0 }, type: 'say', id: 'greet', text: 'Hello there' },
    { into: 'q', id: 'ask', type: 'listen' },
    { id: 'end', type: 'end', reason: 'completed' },
  ],
  edges: [
    { from: 'start', to: 'greet' },
    { from: 'greet', to: 'ask' },
    { from: 'ask', to: 'greet' },
    { from: 'ask', to: 'end', when: "q == 'bye'" },
  ],
};

describe('diffFlows', () => {
  const d = diffFlows(v1, v2);

  it('finds added, removed and changed nodes, field by field', () => {
    expect(d.nodesAdded.map((n) => n.id)).toEqual(['end']);
    expect(d.nodesRemoved.map((n) => n.id)).toEqual(['old']);
    expect(d.nodesChanged).toEqual([{ id: 'greet', type: 'say', changes: [{ field: 'text', before: 'Hello', after: 'Hello there' }] }]);
  });

  it('reports moves apart from changes', () => {
    expect(d.nodesMoved).toEqual(['greet']);
  });

  it('finds added and removed edges, conditions included', () => {
    expect(d.edgesAdded).toEqual([{ from: 'ask', to: 'end', when: "q == 'bye'" }]);
    expect(d.edgesRemoved).toEqual([{ from: 'ask', to: 'old', when: "q == 'bye'" }]);
  });

  it('reports document-level changes', () => {
    expect(d.documentChanges).toEqual([{ field: 'name', before: 'Support', after: 'Support desk' }]);
  });

  it('ignores key order, and sees reordered outgoing edges', () => {
    const a: FlowDocument = { name: 'x', nodes: [{ id: 's', type: 'start' }, { id: 'a', type: 'say', text: 't' }, { id: 'b', type: 'end' }], edges: [{ from: 's', to: 'a', when: 'x' }, { from: 's', to: 'b' }] };
    const b: FlowDocument = { ...a, edges: [{ from: 's', to: 'b' }, { from: 's', to: 'a', when: 'x' }] };
    expect(isEmptyDiff(diffFlows(a, { ...a, nodes: a.nodes.map((n) => ({ ...n })) }))).toBe(true);
    const r = diffFlows(a, b);
    expect(r.edgesReordered).toEqual(['s']);
    expect(r.edgesAdded).toEqual([]);
    expect(isEmptyDiff(r)).toBe(false);
  });

  it('counts a duplicated edge as added', () => {
    const a: FlowDocument = { name: 'x', nodes: [], edges: [{ from: 'a', to: 'b' }] };
    const b: FlowDocument = { name: 'x', nodes: [], edges: [{ from: 'a', to: 'b' }, { from: 'a', to: 'b' }] };
    expect(diffFlows(a, b).edgesAdded).toHaveLength(1);
    expect(diffFlows(b, a).edgesRemoved).toHaveLength(1);
  });

  it('treats an absent field and null alike, and a move alone as empty unless asked', () => {
    const a: FlowDocument = { name: 'x', nodes: [{ id: 'l', type: 'listen', into: null, position: { x: 0, y: 0 } }], edges: [] };
    const b: FlowDocument = { name: 'x', nodes: [{ id: 'l', type: 'listen', position: { x: 5, y: 0 } }], edges: [] };
    expect(isEmptyDiff(diffFlows(a, b))).toBe(true);
    expect(isEmptyDiff(diffFlows(a, b), { ignoreMoves: false })).toBe(false);
  });
});

describe('stableStringify', () => {
  it('sorts keys at every depth and drops undefined', () => {
    expect(stableStringify({ b: 1, a: { d: [1, { f: 2, e: undefined }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"f":2}]},"b":1}');
  });
});
