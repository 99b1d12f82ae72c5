/** Map a validation error (422) onto the nodes it concerns; what concerns no node stays general. */
import { ApiError } from '../api/errors';

export function nodeErrorsFrom(err: unknown, nodeIds: string[]): { byNode: Record<string, string[]>; general: string[] } {
  const byNode: Record<string, string[]> = {};
  const general: string[] = [];
  if (!(err instanceof ApiError) || err.status !== 422) return { byNode, general };
  const ids = new Set(nodeIds);
  for (const d of err.validation) {
    let nodeId = d.node_id ?? null;
    // FastAPI-style locations: document.nodes.<index>.<field>
    if (!nodeId && d.field) {
      const m = /nodes\.(\d+)(?:\.(.+))?/.exec(d.field);
      if (m && nodeIds[Number(m[1])]) nodeId = nodeIds[Number(m[1])];
    }
    const fieldPart = d.field && !/nodes\.\d+$/.test(d.field) ? `${d.field.replace(/^.*nodes\.\d+\.?/, '') || d.field}: ` : '';
    // The server prefixes messages with the node (`node 'x': …`); on the node itself that is noise.
    const message = nodeId ? d.message.replace(new RegExp(`^node ['"“]?${escapeRe(nodeId)}['"”]?:\\s*`), '') : d.message;
    if (nodeId && ids.has(nodeId)) (byNode[nodeId] ??= []).push(`${fieldPart}${message}`);
    else general.push(nodeId ? `Node “${nodeId}”: ${message}` : `${d.field ? `${d.field}: ` : ''}${d.message}`);
  }
  if (!err.validation.length) general.push(err.message);
  return { byNode, general };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
