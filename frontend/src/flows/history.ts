/** Undo/redo history of snapshots. Edits that share a coalesce key in a row (typing in one field, one drag) count as one step. */

export type History<T> = {
  past: T[];
  present: T;
  future: T[];
  lastKey: string | null;
};

export const HISTORY_LIMIT = 100;

export function createHistory<T>(present: T): History<T> {
  return { past: [], present, future: [], lastKey: null };
}

export function record<T>(h: History<T>, next: T, coalesceKey?: string): History<T> {
  if (Object.is(next, h.present)) return h;
  if (coalesceKey && coalesceKey === h.lastKey && h.past.length > 0) {
    return { past: h.past, present: next, future: [], lastKey: coalesceKey };
  }
  const past = [...h.past, h.present];
  if (past.length > HISTORY_LIMIT) past.splice(0, past.length - HISTORY_LIMIT);
  return { past, present: next, future: [], lastKey: coalesceKey ?? null };
}

export function undo<T>(h: History<T>): History<T> {
  if (!h.past.length) return h;
  const prev = h.past[h.past.length - 1];
  return { past: h.past.slice(0, -1), present: prev, future: [h.present, ...h.future], lastKey: null };
}

export function redo<T>(h: History<T>): History<T> {
  if (!h.future.length) return h;
  const [next, ...rest] = h.future;
  return { past: [...h.past, h.present], present: next, future: rest, lastKey: null };
}

/** Replace the present without an undo step (e.g. after loading the server's copy). */
export function reset<T>(present: T): History<T> {
  return createHistory(present);
}

export const canUndo = <T>(h: History<T>) => h.past.length > 0;
export const canRedo = <T>(h: History<T>) => h.future.length > 0;
