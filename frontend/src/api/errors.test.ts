import { describe, expect, it } from 'vitest';
import { ApiError, describeError, errorFromResponse, validationDetails } from './errors';
import { nodeErrorsFrom } from '../builder/nodeErrors';

describe('errorFromResponse', () => {
  it('reads the API’s error shape, 412’s missing list included', () => {
    const e = errorFromResponse(412, { error: 'missing_secrets', message: 'missing required secrets: A, B', details: null, missing: ['A', 'B'] });
    expect(e).toBeInstanceOf(ApiError);
    expect(e.code).toBe('missing_secrets');
    expect(e.missing).toEqual(['A', 'B']);
    expect(describeError(e)).toBe('This flow cannot start: the secrets A, B are missing. Add them on the Secrets page.');
  });

  it('reads FastAPI’s default shape and non-JSON bodies', () => {
    const e = errorFromResponse(422, { detail: [{ loc: ['body', 'name'], msg: 'Field required' }] });
    expect(e.validation).toEqual([{ node_id: null, field: 'name', message: 'Field required' }]);
    const t = errorFromResponse(502, '<html>Bad gateway</html>', 'Bad Gateway');
    expect(t.code).toBe('server_error');
    expect(t.message).toBe('<html>Bad gateway</html>');
  });
});

describe('describeError', () => {
  const err = (status: number, message = '', extra: Partial<{ details: unknown; missing: string[] }> = {}) =>
    new ApiError({ status, code: 'x', message, ...extra });

  it('says what to do for each status', () => {
    expect(describeError(err(0))).toMatch(/Cannot reach the AICO server/);
    expect(describeError(err(401, 'bad token'))).toMatch(/not signed in/);
    expect(describeError(err(409, 'stale'))).toMatch(/Someone else saved changes/);
    expect(describeError(err(413))).toMatch(/too large/);
    expect(describeError(err(404, 'Not Found'))).toMatch(/does not exist/);
    expect(describeError(err(404, 'flow 1 not found'))).toBe('Not found: flow 1 not found');
    expect(describeError(err(404, 'no route for /v1/x'))).toBe('This server does not offer this yet (no route for /v1/x).');
    expect(describeError(err(500, 'Internal Server Error'))).toBe('The server failed (500). Try again; if it keeps failing, check the server log.');
    expect(describeError(err(412, 'missing required secrets: K', { missing: ['K'] }))).toBe('This flow cannot start: the secret K is missing. Add it on the Secrets page.');
  });

  it('lists validation problems by node, at most five', () => {
    const details = Array.from({ length: 7 }, (_, i) => ({ node_id: `n${i}`, field: 'text', message: 'too short' }));
    const s = describeError(err(422, 'invalid flow document', { details }), 'Not saved');
    expect(s.startsWith('Not saved: Please fix: Node “n0” (text): too short;')).toBe(true);
    expect(s).toMatch(/\(and 2 more\)\.$/);
    expect(describeError(err(422, 'bad', { details: [{ field: 'name', message: 'required' }] }))).toBe('Please fix: “name”: required.');
  });

  it('uses an ordinary error’s message', () => {
    expect(describeError(new Error('mic blocked'), 'Voice')).toBe('Voice: mic blocked');
    expect(describeError('??')).toBe('Something went wrong.');
  });
});

describe('validationDetails', () => {
  it('tolerates odd shapes', () => {
    expect(validationDetails(null)).toEqual([]);
    expect(validationDetails({ a: 1 })).toEqual([]);
    expect(validationDetails([1, { message: 'm' }])).toEqual([{ node_id: null, field: null, message: 'm' }]);
  });
});

describe('nodeErrorsFrom', () => {
  it('puts each problem on its node, without the server’s “node x:” prefix', () => {
    const e = errorFromResponse(422, {
      error: 'validation_error', message: 'flow cannot be published',
      details: [
        { node_id: 'say_1', field: 'text', message: "node 'say_1': String should have at least 1 character" },
        { node_id: 'say_2', message: "node 'say_2' is not reachable from the start" },
        { field: 'name', message: 'Field required' },
        { node_id: 'ghost', message: 'edge points at unknown node' },
      ],
    });
    const r = nodeErrorsFrom(e, ['start', 'say_1', 'say_2']);
    expect(r.byNode).toEqual({ say_1: ['text: String should have at least 1 character'], say_2: ["node 'say_2' is not reachable from the start"] });
    expect(r.general).toEqual(['name: Field required', 'Node “ghost”: edge points at unknown node']);
  });

  it('maps FastAPI-style locations to nodes by index', () => {
    const e = errorFromResponse(422, { detail: [{ loc: ['body', 'document', 'nodes', 1, 'text'], msg: 'Field required' }] });
    expect(nodeErrorsFrom(e, ['start', 'say_1']).byNode).toEqual({ say_1: ['text: Field required'] });
  });

  it('ignores errors other than 422', () => {
    expect(nodeErrorsFrom(new ApiError({ status: 409, code: 'conflict', message: '' }), [])).toEqual({ byNode: {}, general: [] });
  });
});

describe('statusForCode', () => {
  it('maps the API’s codes back to their status, unknown ones to a server error', async () => {
    const { statusForCode } = await import('./errors');
    expect(statusForCode('missing_secrets')).toBe(412);
    expect(statusForCode('validation_error')).toBe(422);
    expect(statusForCode('llm_failed')).toBe(500);
    expect(statusForCode(undefined)).toBe(500);
  });
});
