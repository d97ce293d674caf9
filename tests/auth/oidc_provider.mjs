// The OAuth 2.1 authorization server of the auth tests: oidc-provider (the certified Node.js OpenID provider,
// installed by scripts/npm-clients.sh) on loopback, set up the way an MCP client expects an identity provider to be:
//
//   - dynamic client registration, open (no initial access token), public clients (token_endpoint_auth_method none)
//   - authorization code with PKCE (S256, required for every client), refresh tokens (offline_access)
//   - resource indicators (RFC 8707): the access token for `resource=X` is a JWT (RS256) whose `aud` is X and whose
//     `scope` holds the granted scopes among mcp:read mcp:write mcp:admin
//   - one test account, and interaction routes a test drives over plain HTTP with JSON instead of HTML forms:
//       GET  /interaction/:uid          {"prompt": "login"|"consent", "scopes": [...requested...], ...}
//       POST /interaction/:uid/login    login=<account>&password=<password>
//       POST /interaction/:uid/consent  scope=<the granted scopes, space-separated; the others are refused>
//       POST /interaction/:uid/abort    the user declines: the client gets error=access_denied
//
// Usage: node oidc_provider.mjs MODULES_DIR [PORT]
//   MODULES_DIR   the node_modules folder holding oidc-provider (.cache/npm-clients/node_modules)
//   PORT          the port to listen on (default 0: the system picks one)
// Environment: OIDC_TEST_ACCOUNT and OIDC_TEST_PASSWORD, the one account that can sign in.
// Prints one line on stdout once listening, {"issuer": "http://127.0.0.1:PORT", "port": PORT}; logs go to stderr.
// Everything lives in memory and dies with the process.

import { generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [modulesDir, portArg = '0'] = process.argv.slice(2);
if (!modulesDir) {
  console.error('usage: node oidc_provider.mjs MODULES_DIR [PORT]');
  process.exit(2);
}
if (!/^\d{1,5}$/.test(portArg) || Number(portArg) > 65535) {
  console.error('PORT must be a number from 0 to 65535');
  process.exit(2);
}
const ACCOUNT = process.env.OIDC_TEST_ACCOUNT ?? 'test-user';
const PASSWORD = process.env.OIDC_TEST_PASSWORD;
if (!PASSWORD) {
  console.error('OIDC_TEST_PASSWORD must be set');
  process.exit(2);
}
const MCP_SCOPES = ['mcp:read', 'mcp:write', 'mcp:admin'];

// oidc-provider is ESM only and lives outside this folder's resolution path: import it by file.
const { default: Provider, errors } = await import(pathToFileURL(join(modulesDir, 'oidc-provider', 'lib', 'index.js')));

// The port must be known before the Provider exists, because it is part of the issuer: listen first.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(portArg), '127.0.0.1', resolve);
});
const { port } = server.address();
// No trailing slash: clients compare the issuer as a string (RFC 8414 section 3.3, RFC 9207).
const issuer = `http://127.0.0.1:${port}`;

// A fresh signing key per run; the JWKS publishes its public half.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // The MCP scopes are listed here too: registration checks a client's `scope` against this list.
  scopes: ['openid', 'offline_access', ...MCP_SCOPES],
  claims: { openid: ['sub'] },
  clientDefaults: {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  },
  pkce: { required: () => true }, // S256 is the only method oidc-provider accepts
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && code.scopes.has('offline_access'),
  ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 3600, Interaction: 300, Session: 3600, RefreshToken: 3600 },
  findAccount: async (ctx, sub) => (sub === ACCOUNT ? { accountId: sub, claims: async () => ({ sub }) } : undefined),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false }, // replaced by the JSON routes below
    registration: { enabled: true }, // open registration: any client may register
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The token request names the resource again; a refresh without one keeps the granted resource.
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      // Every http(s) resource is an MCP server of the tests; anything else is refused as invalid_target.
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (!/^https?:\/\//.test(resourceIndicator)) throw new errors.InvalidTarget();
        return {
          scope: MCP_SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});

// ---------------------------------------------------------------- interaction routes (JSON, driven by the tests)

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sameSecret(given, expected) {
  const a = Buffer.from(given ?? '');
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return sendJson(res, 400, { error: 'interaction mismatch' });
  const { prompt, params, session } = details;
  if (req.method === 'GET' && !action) {
    return sendJson(res, 200, {
      uid, prompt: prompt.name, reasons: prompt.reasons, client_id: params.client_id,
      scopes: String(params.scope ?? '').split(' ').filter(Boolean), resource: params.resource ?? null,
      details: prompt.details,
    });
  }
  if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
  const form = await readForm(req);
  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'the user declined the authorization request',
    }, { mergeWithLastSubmission: false });
  }
  if (action === 'login') {
    if (prompt.name !== 'login') return sendJson(res, 400, { error: `the prompt is ${prompt.name}, not login` });
    if (form.get('login') !== ACCOUNT || !sameSecret(form.get('password'), PASSWORD)) {
      return sendJson(res, 401, { error: 'wrong account or password' });
    }
    return provider.interactionFinished(req, res, { login: { accountId: ACCOUNT } }, {
      mergeWithLastSubmission: false,
    });
  }
  if (action === 'consent') {
    if (prompt.name !== 'consent') return sendJson(res, 400, { error: `the prompt is ${prompt.name}, not consent` });
    const granted = new Set(String(form.get('scope') ?? '').split(' ').filter(Boolean));
    const requested = String(params.scope ?? '').split(' ').filter(Boolean);
    // Every consent screen is the whole answer for what this request asks: a fresh Grant, so a scope refused
    // once can be given on a later screen (a step-up), which adding to the old Grant would not do, since
    // oidc-provider keeps refusals and subtracts them. A refused scope counts as answered: the provider does not
    // ask again in this request, and the scope stays out of the token.
    const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const yes = requested.filter((scope) => granted.has(scope) || scope === 'openid' || scope === 'offline_access');
    const no = requested.filter((scope) => !yes.includes(scope));
    // The MCP scopes are both registered (static) scopes and the resource's scopes: answer them as both.
    if (yes.length) grant.addOIDCScope(yes.join(' '));
    if (no.length) grant.rejectOIDCScope(no.join(' '));
    for (const indicator of [params.resource ?? []].flat()) {
      const forResource = (list) => list.filter((scope) => MCP_SCOPES.includes(scope)).join(' ');
      if (forResource(yes)) grant.addResourceScope(indicator, forResource(yes));
      if (forResource(no)) grant.rejectResourceScope(indicator, forResource(no));
    }
    const savedGrantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId: savedGrantId } }, {
      mergeWithLastSubmission: true,
    });
  }
  return sendJson(res, 404, { error: 'unknown interaction action' });
}

const providerCallback = provider.callback();
server.on('request', async (req, res) => {
  const match = /^\/interaction\/([\w-]+)(?:\/(login|consent|abort))?$/.exec(new URL(req.url, issuer).pathname);
  if (!match) return providerCallback(req, res);
  try {
    await interaction(req, res, match[1], match[2]);
  } catch (err) {
    // An expired or unknown interaction (no cookie): a 400 with the reason, never a crash.
    console.error('interaction failed: %s', err.message);
    if (!res.headersSent) sendJson(res, 400, { error: err.name ?? 'interaction_failed', message: err.message });
  }
});
provider.on('server_error', (ctx, err) => console.error('server_error: %s', err.stack));

// Nothing to flush: the state is in memory, so a signal ends the process at once (open keep-alive connections
// would hold a graceful close() open).
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
