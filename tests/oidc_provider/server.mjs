// A real OpenID Connect provider on loopback for AICO's auth tests.
//
// It is node `oidc-provider` (the library Logto is built on), configured the way Logto issues
// machine-to-machine tokens: a client-credentials client asks for a resource (API indicator) and
// gets a JWT access token for that audience, signed ES384, carrying an `organization_id` claim
// taken from the token request's `organization_id` parameter (as Logto's organization tokens do).
//
// Usage: node server.mjs --port 0 [--alg ES384|ES256|RS256]
//   (or OIDC_PORT / OIDC_ALG). Prints one JSON line {"issuer": ..., "port": ...} once listening.
//
// Test-only endpoints beside the provider (the provider's own routes are untouched):
//   POST /__test/rotate  new signing key (same alg); the old one leaves the JWKS
//   GET  /__test/stats   {"jwks_requests": n, "discovery_requests": n, "kids": [...]}
//   POST /__test/sign    {"claims": {...}, "header": {...}} -> {"token": ...} signed with the
//                        current provider key (for expired / not-yet-valid tokens without sleeping)

import http from 'node:http';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';
import { SignJWT, exportJWK, generateKeyPair, importJWK } from 'jose';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.OIDC_PORT ?? '0' },
    alg: { type: 'string', default: process.env.OIDC_ALG ?? 'ES384' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});

const ALG = args.alg;
if (!['ES256', 'ES384', 'RS256'].includes(ALG)) {
  console.error(`unsupported --alg ${ALG}: use ES256, ES384 or RS256`);
  process.exit(2);
}

// Clients and resources the tests know by name.
const CLIENTS = [
  { client_id: 'aico-m2m', client_secret: 'aico-m2m-secret' },
  { client_id: 'aico-m2m-other', client_secret: 'aico-m2m-other-secret' },
];
const RESOURCES = {
  // The AICO API; tests configure AICO_OIDC_AUDIENCE to this.
  // aico:<role>: organization role permissions, as Logto puts an organization role's API
  // permissions in the scope of an organization token.
  'https://api.aico.test': {
    scope: 'flows:read flows:write aico:viewer aico:editor aico:admin aico:owner aico:sessions:write',
    accessTokenTTL: 600,
  },
  // Some other API on the same issuer: its tokens must not open AICO.
  'https://other-api.example': { scope: 'things:read', accessTokenTTL: 600 },
};

async function newSigningKey() {
  const { privateKey } = await generateKeyPair(ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: randomUUID(), alg: ALG, use: 'sig' };
}

const stats = { jwks_requests: 0, discovery_requests: 0, token_requests: 0 };
let signingKey = await newSigningKey();
let provider;
let handle; // provider.callback(), rebuilt with the provider
let issuer;

function buildProvider() {
  const p = new Provider(issuer, {
    clients: CLIENTS.map((c) => ({
      ...c,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: ALG,
    })),
    jwks: { keys: [signingKey] },
    enabledJWA: { idTokenSigningAlgValues: [ALG], userinfoSigningAlgValues: [ALG] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => {
          const server = RESOURCES[resourceIndicator];
          if (!server) throw new errors.InvalidTarget();
          return {
            scope: server.scope,
            audience: resourceIndicator,
            accessTokenTTL: server.accessTokenTTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: ALG } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
    },
    extraTokenClaims: (ctx) => {
      // The token endpoint keeps only its grant's parameters in `params`; the parsed body has all.
      const org = ctx?.oidc?.body?.organization_id;
      // Logto's organization role claim: "<org id>:<role>" entries, from a space-separated
      // `organization_roles` request parameter (e.g. "org-1:admin org-1:viewer").
      const roles = ctx?.oidc?.body?.organization_roles;
      const claims = org ? { organization_id: org } : {};
      if (typeof roles === 'string') claims.organization_roles = roles.split(' ').filter(Boolean);
      return Object.keys(claims).length ? claims : undefined;
    },
    // Quiet: the tests read responses, not logs.
    renderError: (ctx, out) => { ctx.type = 'json'; ctx.body = out; },
  });
  p.proxy = false;
  return p;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function handleTestRoute(req, res, path) {
  if (path === '/__test/stats' && req.method === 'GET') {
    return sendJson(res, 200, { ...stats, kids: [signingKey.kid], alg: ALG });
  }
  if (path === '/__test/rotate' && req.method === 'POST') {
    const previous = signingKey.kid;
    signingKey = await newSigningKey();
    provider = buildProvider();
    handle = provider.callback();
    return sendJson(res, 200, { previous_kid: previous, kid: signingKey.kid });
  }
  if (path === '/__test/sign' && req.method === 'POST') {
    const { claims = {}, header = {} } = JSON.parse((await readBody(req)) || '{}');
    const key = await importJWK(signingKey, ALG);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: ALG, kid: signingKey.kid, typ: 'at+jwt', ...header })
      .sign(key);
    return sendJson(res, 200, { token });
  }
  return sendJson(res, 404, { error: 'not_found' });
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path.startsWith('/__test/')) {
    handleTestRoute(req, res, path).catch((err) => sendJson(res, 500, { error: String(err) }));
    return;
  }
  if (path === '/.well-known/openid-configuration') stats.discovery_requests += 1;
  if (path === '/jwks') stats.jwks_requests += 1;
  if (path === '/token') stats.token_requests += 1;
  handle(req, res);
});

server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  issuer = `http://${args.host}:${port}`;
  provider = buildProvider();
  handle = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer, port, alg: ALG })}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
