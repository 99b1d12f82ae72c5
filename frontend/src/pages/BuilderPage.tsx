/** The flow builder: palette, canvas, side panels, undo/redo, save draft (with conflict handling), publish. */
import { ReactFlowProvider } from '@xyflow/react';
import { useQueryClient } from '@tanstack/react-query';
import { useCallback, useEffect, useMemo, useState } from 'react';
import { Link, useParams } from 'react-router-dom';
import { flowsApi, useFlow, useFlowSchema } from '../api/flows';
import { ApiError, describeError } from '../api/errors';
import type { Flow, FlowDocument } from '../api/types';
import { Canvas } from '../builder/Canvas';
import { EdgePanel } from '../builder/EdgePanel';
import { FlowSettingsPanel } from '../builder/FlowSettingsPanel';
import { NodePanel } from '../builder/NodePanel';
import { nodeErrorsFrom } from '../builder/nodeErrors';
import { Palette } from '../builder/Palette';
import { VersionsPanel } from '../builder/VersionsPanel';
import { ErrorNote } from '../components/ErrorNote';
import { stableStringify } from '../flows/diff';
import { addNode, connect, documentToGraph, moveEdge, moveNodes, newNodeId, removeEdgesById, removeNodes, renameNode, updateNodeFields } from '../flows/graph';
import { canRedo, canUndo, createHistory, record, redo, undo, type History } from '../flows/history';
import { nodeTypesFromSchema } from '../flows/schema';

type Selection = { kind: 'node' | 'edge'; id: string } | null;
type Tab = 'edit' | 'flow' | 'versions';
type PublishStep = { label: string; pct: number; done?: boolean; failed?: boolean };

export function BuilderPage() {
  const { id = '' } = useParams();
  const flow = useFlow(id);
  if (flow.error) return <div><Link to="/flows">← Flows</Link><ErrorNote error={flow.error} context="This flow could not be opened" /></div>;
  if (!flow.data) return <p className="muted">Loading flow…</p>;
  return <ReactFlowProvider><Builder key={flow.data.id} initial={flow.data} /></ReactFlowProvider>;
}

function Builder({ initial }: { initial: Flow }) {
  const qc = useQueryClient();
  const schemaQ = useFlowSchema();
  const specs = useMemo(() => (schemaQ.data ? nodeTypesFromSchema(schemaQ.data.schema) : []), [schemaQ.data]);
  const [hist, setHist] = useState<History<FlowDocument>>(() => createHistory({ ...initial.document, name: initial.document.name ?? initial.name }));
  const doc = hist.present;
  const [saved, setSaved] = useState<{ revision: number; text: string }>(() => ({ revision: initial.draft_revision, text: stableStringify({ ...initial.document, name: initial.document.name ?? initial.name }) }));
  const [selection, setSelection] = useState<Selection>(null);
  const [tab, setTab] = useState<Tab>('edit');
  const [nodeErrors, setNodeErrors] = useState<Record<string, string[]>>({});
  const [notice, setNotice] = useState<{ kind: 'ok' | 'error' | 'conflict'; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [publish, setPublish] = useState<PublishStep | null>(null);
  const dirty = stableStringify(doc) !== saved.text;

  // Functional updates: several canvas callbacks may fire in one event (a node and its edges removed).
  const change = useCallback((next: FlowDocument | ((d: FlowDocument) => FlowDocument), key?: string) =>
    setHist((h) => record(h, typeof next === 'function' ? next(h.present) : next, key)), []);

  // Keyboard: Ctrl/Cmd+Z undo, Ctrl/Cmd+Shift+Z or Ctrl+Y redo (not while typing in a field).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const el = e.target as HTMLElement;
      if (el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable)) return;
      if (!(e.ctrlKey || e.metaKey)) return;
      const k = e.key.toLowerCase();
      if (k === 'z' && !e.shiftKey) { e.preventDefault(); setHist(undo); }
      else if ((k === 'z' && e.shiftKey) || k === 'y') { e.preventDefault(); setHist(redo); }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  useEffect(() => {
    const warn = (e: BeforeUnloadEvent) => { if (dirty) e.preventDefault(); };
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, [dirty]);

  const specFor = (type: string) => specs.find((s) => s.type === type);
  const addOfType = (type: string, position?: { x: number; y: number }) => {
    const nid = newNodeId(doc, type);
    const pos = position ?? { x: 80 + doc.nodes.length * 30, y: 80 + doc.nodes.length * 30 };
    change(addNode(doc, { id: nid, type, ...(specFor(type)?.defaults ?? {}), position: { x: Math.round(pos.x), y: Math.round(pos.y) } }));
    setSelection({ kind: 'node', id: nid });
    setTab('edit');
  };

  const applyServerFlow = (f: Flow) => {
    const d = { ...f.document, name: f.document.name ?? f.name };
    setSaved({ revision: f.draft_revision, text: stableStringify(d) });
    qc.setQueryData(['flow', f.id], f);
    void qc.invalidateQueries({ queryKey: ['flows'] });
    return d;
  };

  const showError = (e: unknown, context: string) => {
    const { byNode, general } = nodeErrorsFrom(e, doc.nodes.map((n) => n.id));
    setNodeErrors(byNode);
    if (e instanceof ApiError && e.status === 409) setNotice({ kind: 'conflict', text: describeError(e) });
    else if (e instanceof ApiError && e.status === 422) {
      const n = Object.keys(byNode).length;
      setNotice({ kind: 'error', text: `${context}: ${n ? `${n} node${n > 1 ? 's have' : ' has'} problems (shown on the node${n > 1 ? 's' : ''}). ` : ''}${general.join('; ')}`.trim() });
    } else setNotice({ kind: 'error', text: describeError(e, context) });
  };

  const save = async (revision = saved.revision): Promise<boolean> => {
    setBusy(true);
    try {
      const f = await flowsApi.save(initial.id, { name: doc.name, description: doc.description ?? null, document: doc, draft_revision: revision });
      const normalized = applyServerFlow(f);
      // The server fills in defaults; take its copy as the present, keeping the undo history.
      setHist((h) => (stableStringify(h.present) === stableStringify(doc) ? { ...h, present: normalized } : h));
      setNodeErrors({});
      setNotice({ kind: 'ok', text: `Draft saved (revision ${f.draft_revision}).` });
      return true;
    } catch (e) {
      showError(e, 'The draft was not saved');
      return false;
    } finally { setBusy(false); }
  };

  const reloadTheirs = async () => {
    try {
      const f = await flowsApi.get(initial.id);
      const d = applyServerFlow(f);
      setHist((h) => record(h, d));
      setNotice({ kind: 'ok', text: `Loaded the latest saved draft (revision ${f.draft_revision}). Undo brings your changes back.` });
    } catch (e) { showError(e, 'The latest draft could not be loaded'); }
  };

  const overwrite = async () => {
    try {
      const f = await flowsApi.get(initial.id);
      await save(f.draft_revision);
    } catch (e) { showError(e, 'The draft was not saved'); }
  };

  const doPublish = async () => {
    setNotice(null);
    setPublish({ label: 'Saving the draft…', pct: 15 });
    if (dirty && !(await save())) { setPublish({ label: 'Publishing stopped: the draft could not be saved.', pct: 100, failed: true }); return; }
    setPublish({ label: 'Validating and publishing…', pct: 55 });
    try {
      const v = await flowsApi.publish(initial.id);
      setPublish({ label: `Published version ${v.version}.`, pct: 100, done: true });
      setNodeErrors({});
      void qc.invalidateQueries({ queryKey: ['versions', initial.id] });
      void qc.invalidateQueries({ queryKey: ['flows'] });
      void qc.invalidateQueries({ queryKey: ['flow', initial.id] });
    } catch (e) {
      showError(e, 'Not published');
      setPublish({ label: 'Not published.', pct: 100, failed: true });
    }
  };

  const selectedNode = selection?.kind === 'node' ? doc.nodes.find((n) => n.id === selection.id) : undefined;
  const graphEdges = useMemo(() => documentToGraph(doc).edges, [doc]);
  const selectedEdgeIndex = selection?.kind === 'edge' ? graphEdges.findIndex((e) => e.id === selection.id) : -1;
  const selectedEdge = selectedEdgeIndex >= 0 ? doc.edges[selectedEdgeIndex] : undefined;

  return (
    <div className="builder">
      <div className="toolbar">
        <Link to="/flows">← Flows</Link>
        <input className="flow-name" aria-label="Flow name" value={doc.name} onChange={(e) => change({ ...doc, name: e.target.value }, 'name')} />
        <button onClick={() => setHist(undo)} disabled={!canUndo(hist)} title="Undo (Ctrl+Z)">Undo</button>
        <button onClick={() => setHist(redo)} disabled={!canRedo(hist)} title="Redo (Ctrl+Shift+Z)">Redo</button>
        <button onClick={() => void save()} disabled={busy || !dirty}>Save draft</button>
        <button className="primary" onClick={() => void doPublish()} disabled={busy || (publish !== null && !publish.done && !publish.failed)}>Publish</button>
        <Link className="button" to={`/flows/${initial.id}/test`}>Test</Link>
        <span className="small muted" data-testid="save-state">{dirty ? 'Unsaved changes' : `Saved · revision ${saved.revision}`}</span>
      </div>
      {publish && (
        <div className={`progress${publish.failed ? ' failed' : ''}`} data-testid="publish-progress">
          <div className="progress-bar" style={{ width: `${publish.pct}%` }} />
          <span>{publish.label}</span>
        </div>
      )}
      {notice && (
        <div className={notice.kind === 'ok' ? 'ok' : 'error'} role={notice.kind === 'ok' ? 'status' : 'alert'} data-testid="builder-notice">
          {notice.text}
          {notice.kind === 'conflict' && <> <button onClick={() => void reloadTheirs()}>Reload theirs</button> <button onClick={() => void overwrite()}>Overwrite with mine</button></>}
        </div>
      )}
      {schemaQ.data && !schemaQ.data.fromServer && <div className="warn small">The server did not provide the flow schema ({describeError(schemaQ.data.error)}); node forms use a built-in copy and may lack fields.</div>}
      <div className="builder-body">
        <Palette specs={specs} onAdd={(t) => addOfType(t)} />
        <Canvas
          doc={doc}
          nodeErrors={nodeErrors}
          selection={selection}
          onSelect={(s) => { setSelection(s); if (s) setTab('edit'); }}
          onMove={(pos) => change((d) => moveNodes(d, pos))}
          onRemoveNodes={(ids) => { change((d) => removeNodes(d, ids)); setSelection(null); }}
          onRemoveEdges={(ids) => { change((d) => removeEdgesById(d, ids)); setSelection(null); }}
          onConnect={(from, to) => change((d) => connect(d, from, to))}
          onDropType={(type, pos) => addOfType(type, pos)}
        />
        <aside className="sidepanel">
          <div className="tabs" role="tablist">
            <button role="tab" aria-selected={tab === 'edit'} onClick={() => setTab('edit')}>Selected</button>
            <button role="tab" aria-selected={tab === 'flow'} onClick={() => setTab('flow')}>Flow</button>
            <button role="tab" aria-selected={tab === 'versions'} onClick={() => setTab('versions')}>Versions</button>
          </div>
          {tab === 'edit' && selectedNode && (
            <NodePanel
              node={selectedNode}
              spec={specFor(selectedNode.type)}
              errors={nodeErrors[selectedNode.id] ?? []}
              onChange={(fields) => {
                // A form filling in defaults the node already has is not an edit (and must not be an undo step).
                const { id: _i, type: _t, position: _p, ...current } = selectedNode;
                if (stableStringify(fields) !== stableStringify(current)) change(updateNodeFields(doc, selectedNode.id, fields), `node:${selectedNode.id}`);
              }}
              onRename={(nid) => {
                const next = renameNode(doc, selectedNode.id, nid);
                if (!next) return false;
                change(next);
                setSelection({ kind: 'node', id: nid.trim() });
                return true;
              }}
              onDelete={() => { change(removeNodes(doc, [selectedNode.id])); setSelection(null); }}
            />
          )}
          {tab === 'edit' && selectedEdge && (
            <EdgePanel
              edge={selectedEdge}
              index={doc.edges.filter((e, i) => e.from === selectedEdge.from && i < selectedEdgeIndex).length}
              siblings={doc.edges.filter((e) => e.from === selectedEdge.from).length}
              onWhen={(when) => change({ ...doc, edges: doc.edges.map((e, i) => (i === selectedEdgeIndex ? (when ? { ...e, when } : { from: e.from, to: e.to }) : e)) }, `edge:${selectedEdgeIndex}`)}
              onMove={(d) => { const next = moveEdge(doc, selectedEdgeIndex, d); change(next); setSelection(null); }}
              onDelete={() => { change({ ...doc, edges: doc.edges.filter((_, i) => i !== selectedEdgeIndex) }); setSelection(null); }}
            />
          )}
          {tab === 'edit' && !selectedNode && !selectedEdge && <p className="muted panel">Select a node or an edge to edit it.</p>}
          {tab === 'flow' && <FlowSettingsPanel doc={doc} onChange={change} />}
          {tab === 'versions' && <VersionsPanel flowId={initial.id} draft={doc} />}
        </aside>
      </div>
    </div>
  );
}
