/** The one HTTP client the dashboard uses: same origin, bearer token, typed errors. */
import { ApiError, errorFromResponse } from './errors';

type TokenGetter = () => Promise<string | null> | string | null;

let getToken: TokenGetter = () => null;
let onUnauthorized: () => void = () => {};

/** Tell the client how to get the bearer token (dev token or OIDC access token). */
export function configureAuth(getter: TokenGetter, unauthorized?: () => void): void {
  getToken = getter;
  if (unauthorized) onUnauthorized = unauthorized;
}

export async function currentToken(): Promise<string | null> {
  return await getToken();
}

export type RequestOptions = { method?: string; body?: unknown; signal?: AbortSignal; auth?: boolean };

export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.auth !== false) {
    const token = await getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method: opts.method ?? (opts.body !== undefined ? 'POST' : 'GET'),
      headers,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError({ status: 0, code: 'network', message: (e as Error).message || 'network error' });
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let body: unknown = text;
  if (text) {
    try { body = JSON.parse(text); } catch { /* keep text */ }
  } else body = null;
  if (!res.ok) {
    const err = errorFromResponse(res.status, body, res.statusText);
    if (res.status === 401 && opts.auth !== false) onUnauthorized();
    throw err;
  }
  return body as T;
}

/** POST and hand back the raw response (for streams); errors are typed as for `api`. */
export async function postRaw(path: string, body: unknown, accept = 'text/event-stream'): Promise<Response> {
  const token = await getToken();
  let res: Response;
  try {
    res = await fetch(path, {
      method: 'POST',
      headers: { Accept: accept, 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError({ status: 0, code: 'network', message: (e as Error).message || 'network error' });
  }
  if (!res.ok) {
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = JSON.parse(text); } catch { /* keep text */ }
    if (res.status === 401) onUnauthorized();
    throw errorFromResponse(res.status, parsed, res.statusText);
  }
  return res;
}

export const get = <T>(path: string, signal?: AbortSignal) => api<T>(path, { signal });
export const post = <T>(path: string, body?: unknown) => api<T>(path, { method: 'POST', body: body ?? {} });
export const put = <T>(path: string, body: unknown) => api<T>(path, { method: 'PUT', body });
export const del = (path: string) => api<void>(path, { method: 'DELETE' });

/** A WebSocket URL on the same origin as the page for an API path. */
export function wsUrl(pathOrUrl: string): string {
  if (/^wss?:\/\//.test(pathOrUrl)) return pathOrUrl;
  if (/^https?:\/\//.test(pathOrUrl)) return pathOrUrl.replace(/^http/, 'ws');
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${window.location.host}${pathOrUrl}`;
}

export function qs(params: Record<string, string | number | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}
