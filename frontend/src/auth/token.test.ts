import { describe, expect, it } from 'vitest';
import { takeTokenFromFragment, tokenFromHash } from './token';

class MemoryStorage {
  m = new Map<string, string>();
  getItem(k: string) { return this.m.get(k) ?? null; }
  setItem(k: string, v: string) { this.m.set(k, v); }
  removeItem(k: string) { this.m.delete(k); }
  clear() { this.m.clear(); }
  key() { return null; }
  get length() { return this.m.size; }
}

describe('dev token from the sign-in link', () => {
  it('reads the token from the fragment forms it may take', () => {
    expect(tokenFromHash('#token=abc.def')).toBe('abc.def');
    expect(tokenFromHash('#/?token=xyz')).toBe('xyz');
    expect(tokenFromHash('#/flows')).toBeNull();
    expect(tokenFromHash('')).toBeNull();
  });

  it('stores it for the tab and strips it from the address', () => {
    const store = new MemoryStorage() as unknown as Storage;
    const calls: string[] = [];
    const hist = { replaceState: (_s: unknown, _t: string, url: string) => calls.push(url) } as unknown as History;
    const loc = { hash: '#token=s3cret', pathname: '/', search: '' } as Location;
    expect(takeTokenFromFragment(loc, hist, store)).toBe('s3cret');
    expect(store.getItem('aico.token')).toBe('s3cret');
    expect(calls).toEqual(['/#/']);
    expect(takeTokenFromFragment({ ...loc, hash: '#/flows' } as Location, hist, store)).toBeNull();
    expect(calls).toHaveLength(1);
  });
});
