import { describe, expect, it } from 'vitest';
import { HISTORY_LIMIT, canRedo, canUndo, createHistory, record, redo, undo } from './history';

describe('undo/redo history', () => {
  it('undoes and redoes in order', () => {
    let h = createHistory('a');
    h = record(h, 'b');
    h = record(h, 'c');
    expect(h.present).toBe('c');
    h = undo(h); expect(h.present).toBe('b');
    h = undo(h); expect(h.present).toBe('a');
    expect(canUndo(h)).toBe(false);
    h = undo(h); expect(h.present).toBe('a');
    h = redo(h); expect(h.present).toBe('b');
    h = redo(h); expect(h.present).toBe('c');
    expect(canRedo(h)).toBe(false);
  });

  it('drops the redo branch on a new edit', () => {
    let h = record(record(createHistory(1), 2), 3);
    h = undo(h);
    h = record(h, 4);
    expect(h.present).toBe(4);
    expect(canRedo(h)).toBe(false);
    expect(undo(h).present).toBe(2);
  });

  it('counts edits with the same coalesce key in a row as one step', () => {
    let h = createHistory('');
    h = record(h, 'H', 'node:a');
    h = record(h, 'He', 'node:a');
    h = record(h, 'Hel', 'node:a');
    h = record(h, 'Hel!', 'node:b');
    expect(undo(h).present).toBe('Hel');
    expect(undo(undo(h)).present).toBe('');
  });

  it('starts a new step after an undo even with the same key', () => {
    let h = record(record(createHistory('x'), 'xa', 'k'), 'xab', 'k');
    h = undo(h);
    expect(h.present).toBe('x');
    h = redo(h);
    h = record(h, 'xabc', 'k');
    expect(undo(h).present).toBe('xab');
  });

  it('ignores a record of the very same value', () => {
    const h = createHistory({ a: 1 });
    expect(record(h, h.present)).toBe(h);
  });

  it('keeps at most the limit of past steps', () => {
    let h = createHistory(0);
    for (let i = 1; i <= HISTORY_LIMIT + 20; i++) h = record(h, i);
    expect(h.past).toHaveLength(HISTORY_LIMIT);
    expect(h.past[0]).toBe(20);
  });
});
