/** The embedded-mode dev token: taken from the sign-in link's fragment, kept for the tab in sessionStorage. */

const KEY = 'aico.token';

/**
 * If the URL fragment carries `token=…` (the link `aico up` prints), store it and strip it from the
 * address bar so it is not left in history or shared by copy-paste. Returns the token, if any.
 */
export function takeTokenFromFragment(loc: Location = window.location, hist: History = window.history, store: Storage = window.sessionStorage): string | null {
  const token = tokenFromHash(loc.hash);
  if (!token) return null;
  store.setItem(KEY, token);
  hist.replaceState(null, '', `${loc.pathname}${loc.search}#/`);
  return token;
}

export function tokenFromHash(hash: string): string | null {
  const h = hash.replace(/^#\/?/, '');
  const params = new URLSearchParams(h.includes('?') ? h.slice(h.indexOf('?') + 1) : h);
  const t = params.get('token');
  return t && t.trim() ? t.trim() : null;
}

export function storedToken(store: Storage = window.sessionStorage): string | null {
  return store.getItem(KEY);
}

export function clearToken(store: Storage = window.sessionStorage): void {
  store.removeItem(KEY);
}
