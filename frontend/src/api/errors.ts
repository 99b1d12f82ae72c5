/** Typed API errors and their wording for people. */

export type ValidationDetail = { node_id?: string | null; field?: string | null; message: string };

/** An error answered by the AICO API, in its one JSON shape, or a failure to reach it. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly missing: string[];

  constructor(opts: { status: number; code: string; message: string; details?: unknown; missing?: string[] }) {
    super(opts.message);
    this.name = 'ApiError';
    this.status = opts.status;
    this.code = opts.code;
    this.details = opts.details ?? null;
    this.missing = opts.missing ?? [];
  }

  /** Validation problems (422), normalised to a list whatever shape `details` had. */
  get validation(): ValidationDetail[] {
    return validationDetails(this.details);
  }
}

export function validationDetails(details: unknown): ValidationDetail[] {
  if (!Array.isArray(details)) return [];
  return details
    .filter((d): d is Record<string, unknown> => typeof d === 'object' && d !== null)
    .map((d) => {
      // Accept both our shape and FastAPI's default ({loc, msg}).
      const loc = Array.isArray(d.loc) ? d.loc.map(String) : [];
      const message = String(d.message ?? d.msg ?? 'Invalid value');
      return {
        node_id: (d.node_id as string | undefined) ?? null,
        field: (d.field as string | undefined) ?? (loc.length ? loc.filter((p) => p !== 'body').join('.') : null),
        message,
      };
    });
}

/** Build an ApiError from a response status and its (possibly non-JSON) body. */
export function errorFromResponse(status: number, body: unknown, statusText = ''): ApiError {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    const detail = b.detail;
    const code = typeof b.error === 'string' ? b.error : codeForStatus(status);
    let message = typeof b.message === 'string' ? b.message : '';
    if (!message && typeof detail === 'string') message = detail;
    const missing = Array.isArray(b.missing)
      ? b.missing.map(String)
      : b.details && typeof b.details === 'object' && Array.isArray((b.details as { missing?: unknown }).missing)
        ? ((b.details as { missing: unknown[] }).missing).map(String)
        : [];
    return new ApiError({ status, code, message: message || statusText, details: b.details ?? (Array.isArray(detail) ? detail : null), missing });
  }
  const text = typeof body === 'string' ? body.trim().slice(0, 300) : '';
  return new ApiError({ status, code: codeForStatus(status), message: text || statusText });
}

function codeForStatus(status: number): string {
  switch (status) {
    case 0: return 'network';
    case 400: return 'bad_request';
    case 401: return 'unauthorized';
    case 403: return 'forbidden';
    case 404: return 'not_found';
    case 409: return 'conflict';
    case 412: return 'missing_secrets';
    case 413: return 'too_large';
    case 422: return 'validation_error';
    default: return status >= 500 ? 'server_error' : 'error';
  }
}

/** One sentence a user understands, for any error the dashboard may meet. */
export function describeError(err: unknown, context?: string): string {
  const prefix = context ? `${context}: ` : '';
  if (!(err instanceof ApiError)) {
    if (err instanceof Error) return prefix + err.message;
    return prefix + 'Something went wrong.';
  }
  const server = err.message && !/^(Bad Request|Unauthorized|Not Found|Conflict|Unprocessable (Entity|Content)|Internal Server Error)$/i.test(err.message) ? err.message : '';
  switch (err.status) {
    case 0:
      return prefix + 'Cannot reach the AICO server. Check that `aico up` is running and try again.';
    case 400:
      return prefix + (server ? `The request was not accepted: ${server}` : 'The request was not accepted.');
    case 401:
      return prefix + 'You are not signed in, or your sign-in has expired. Open the sign-in link that `aico up` printed, or sign in again.';
    case 403:
      if (err.code === 'destination_refused' && server) return prefix + `The number cannot be dialled: ${server}`;
      return prefix + 'You are not allowed to do this.';
    case 404:
      if (/^no route/i.test(server)) return prefix + `This server does not offer this yet (${server}).`;
      return prefix + (server ? `Not found: ${server}` : 'This item does not exist (it may have been deleted). This server may also not offer this feature yet.');
    case 409:
      return prefix + 'Someone else saved changes since you opened this. Reload to see them, or overwrite them with yours.';
    case 412: {
      const names = err.missing.length ? err.missing.join(', ') : '';
      return prefix + (names
        ? `This flow cannot start: the secret${err.missing.length > 1 ? 's' : ''} ${names} ${err.missing.length > 1 ? 'are' : 'is'} missing. Add ${err.missing.length > 1 ? 'them' : 'it'} on the Secrets page.`
        : `This flow cannot start: a required secret is missing. ${server}`.trim());
    }
    case 413:
      return prefix + 'This is too large for the server to accept. Make it smaller and try again.';
    case 422: {
      const v = err.validation;
      if (v.length) {
        const lines = v.slice(0, 5).map((d) =>
          d.node_id ? `Node “${d.node_id}”${d.field ? ` (${d.field})` : ''}: ${d.message}`
            : d.field ? `“${d.field}”: ${d.message}` : d.message);
        const more = v.length > 5 ? ` (and ${v.length - 5} more)` : '';
        return prefix + `Please fix: ${lines.join('; ')}${more}.`;
      }
      return prefix + (server ? `Please fix: ${server}` : 'Some values are not valid.');
    }
    default:
      if (err.status >= 500) return prefix + `The server failed (${err.status})${server ? `: ${server}` : ''}. Try again; if it keeps failing, check the server log.`;
      return prefix + (server || `The request failed (${err.status}).`);
  }
}

/** The HTTP status an error code stands for, for errors that arrive inside a stream (no status of their own). */
export function statusForCode(code: unknown): number {
  const map: Record<string, number> = {
    bad_request: 400, unauthorized: 401, forbidden: 403, not_found: 404, conflict: 409,
    missing_secrets: 412, payload_too_large: 413, validation_error: 422,
  };
  return typeof code === 'string' && code in map ? map[code] : 500;
}
