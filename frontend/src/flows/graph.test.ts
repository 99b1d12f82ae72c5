import { describe, expect, it } from 'vitest';
import type { FlowDocument } from '../api/types';
import {
  autoLayout, connect, documentToGraph, graphToDocument, moveEdge, newNodeId, nodeSummary, removeEdgesById, removeNodes, renameNode, updateNodeFields,
} from './graph';

const doc: FlowDocument = {
  name: 'Greeter',
  description: 'says hello',
  variables: { name: { type: 'string', default: '' } },
  providers: { llm: { profile: 'main', temperature: 0.2 } },
  nodes: [
    { id: 'start', type: 'start', position: { x: 0, y: 0 } },
    { id: 'hello', type: 'say', text: 'Hello {{ name }}', interruptible: true },
    { id: 'ask', type: 'listen', into: 'answer', position: { x: 400, y: 10 } },
    { id: 'bye', type: 'end', reason: 'completed' },
    { id: 'help', type: 'say', text: 'Let me help' },
  ],
  edges: [
    { from: 'start', to: 'hello' },
    { from: 'hello', to: 'ask' },
    { from: 'ask', to: 'help', when: "answer == 'help'" },
    { from: 'ask', to: 'bye' },
  ],
};

describe('documentToGraph / graphToDocument', () => {
  it('round-trips a document: fields, edge order, conditions and the other top-level parts survive', () => {
    const g = documentToGraph(doc);
    const back = graphToDocument(g, doc);
    expect(back.name).toBe('Greeter');
    expect(back.variables).toEqual(doc.variables);
    expect(back.providers).toEqual(doc.providers);
    expect(back.edges).toEqual(doc.edges);
    expect(back.nodes.map((n) => n.id)).toEqual(['start', 'hello', 'ask', 'bye', 'help']);
    expect(back.nodes[1]).toMatchObject({ id: 'hello', type: 'say', text: 'Hello {{ name }}', interruptible: true });
    expect(back.nodes[2].position).toEqual({ x: 400, y: 10 });
  });

  it('keeps node fields in data and never puts id, type or position among them', () => {
    const g = documentToGraph(doc);
    const hello = g.nodes.find((n) => n.id === 'hello')!;
    expect(hello.data.nodeType).toBe('say');
    expect(Object.keys(hello.data.fields).sort()).toEqual(['interruptible', 'text']);
  });

  it('labels conditional edges with their condition and gives every edge a distinct id', () => {
    const g = documentToGraph(doc);
    expect(g.edges[2].label).toBe("answer == 'help'");
    expect(g.edges[3].label).toBeUndefined();
    expect(new Set(g.edges.map((e) => e.id)).size).toBe(4);
  });

  it('places nodes without a position by their distance from start', () => {
    const layout = autoLayout(doc);
    expect(layout.hello.x).toBeGreaterThan(layout.start.x);
    expect(layout.bye.x).toBeGreaterThan(layout.hello.x);
    expect(layout.bye.x).toBe(layout.help.x);
    expect(layout.bye.y).not.toBe(layout.help.y);
    const g = documentToGraph(doc);
    expect(g.nodes.find((n) => n.id === 'start')!.position).toEqual({ x: 0, y: 0 });
    expect(g.nodes.find((n) => n.id === 'hello')!.position).toEqual(layout.hello);
  });

  it('rounds positions when writing back', () => {
    const g = documentToGraph(doc);
    g.nodes[0].position = { x: 10.6, y: -3.2 };
    expect(graphToDocument(g, doc).nodes[0].position).toEqual({ x: 11, y: -3 });
  });
});

describe('document edits', () => {
  it('gives new nodes the first free id of their type', () => {
    expect(newNodeId(doc, 'say')).toBe('say_1');
    const d2 = { ...doc, nodes: [...doc.nodes, { id: 'say_1', type: 'say' }] };
    expect(newNodeId(d2, 'say')).toBe('say_2');
  });

  it('renames a node and rewrites its edges; refuses a taken or empty id', () => {
    const r = renameNode(doc, 'ask', 'question')!;
    expect(r.nodes.map((n) => n.id)).toContain('question');
    expect(r.edges.filter((e) => e.from === 'question' || e.to === 'question')).toHaveLength(3);
    expect(renameNode(doc, 'ask', 'bye')).toBeNull();
    expect(renameNode(doc, 'ask', '  ')).toBeNull();
  });

  it('removes nodes with the edges that touch them', () => {
    const r = removeNodes(doc, ['ask']);
    expect(r.nodes.map((n) => n.id)).not.toContain('ask');
    expect(r.edges).toEqual([{ from: 'start', to: 'hello' }]);
  });

  it('removes edges by graph id, ignoring ids that no longer match', () => {
    const ids = documentToGraph(doc).edges.map((e) => e.id);
    const r = removeEdgesById(doc, [ids[2], 'e9:nope->none']);
    expect(r.edges).toHaveLength(3);
    expect(r.edges.some((e) => e.when)).toBe(false);
    expect(removeEdgesById(doc, ['e9:x->y'])).toBe(doc);
  });

  it('connects two nodes once', () => {
    const r = connect(doc, 'hello', 'bye');
    expect(r.edges).toHaveLength(5);
    expect(connect(r, 'hello', 'bye')).toBe(r);
  });

  it('reorders an edge only among edges leaving the same node', () => {
    const r = moveEdge(doc, 3, -1);
    expect(r.edges[2]).toEqual({ from: 'ask', to: 'bye' });
    expect(r.edges[3]).toEqual({ from: 'ask', to: 'help', when: "answer == 'help'" });
    expect(moveEdge(doc, 2, -1)).toBe(doc); // first edge leaving `ask`
    expect(moveEdge(doc, 0, 1)).toBe(doc); // only edge leaving `start`
  });

  it('replaces a node’s fields but keeps its id, type and position', () => {
    const r = updateNodeFields(doc, 'ask', { into: 'reply' });
    expect(r.nodes[2]).toEqual({ id: 'ask', type: 'listen', into: 'reply', position: { x: 400, y: 10 } });
  });

  it('summarises a node by its telling field, cut to a card’s width', () => {
    expect(nodeSummary('say', { text: 'Hi' })).toBe('Hi');
    expect(nodeSummary('http', { method: 'POST', url: 'https://x' })).toBe('POST https://x');
    expect(nodeSummary('listen', { into: 'a' })).toBe('→ a');
    expect(nodeSummary('say', { text: 'x'.repeat(100) })).toHaveLength(58);
  });
});
