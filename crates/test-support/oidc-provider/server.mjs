// Test peer for the auth-oauth2 integration tests: oidc-provider (OpenID Certified, by panva)
// on 127.0.0.1, with logins and consent completed automatically.
//
// Protocol with the test process (see src/oidc_provider.rs of test-support):
// - listens on 127.0.0.1, port 0 (or $OIDC_PROVIDER_PORT when set);
// - when ready, writes exactly ONE line to stdout: {"issuer":"http://127.0.0.1:<port>","port":<port>};
//   nothing else is ever written to stdout (library notices are sent to stderr);
// - exits when its stdin closes (the test process is gone) or on SIGTERM / SIGINT;
// - diagnostics and errors go to stderr.
//
// Everything is in memory and dies with the process: tokens, grants, sessions, keys.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

// oidc-provider prints its notices with console.info (stdout). Keep stdout for the ready line.
console.log = console.error; // eslint-disable-line no-console
console.info = console.error; // eslint-disable-line no-console

const { default: Provider, errors } = await import('oidc-provider');

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>`;
}

// Reads an application/x-www-form-urlencoded request body (for the device login pages).
async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// Fixed test credentials. The secret deliberately uses the base64 alphabet ('+', '/', '='):
// oidc-provider form-decodes HTTP Basic credentials, so a client that does not
// application/x-www-form-urlencode the id and secret before Basic encoding (RFC 6749 §2.3.1)
// fails with invalid_client. Keep in sync with src/oidc_provider.rs of test-support.
const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const CONFIDENTIAL_CLIENT_ID = 'conf-client';
const CONFIDENTIAL_CLIENT_SECRET = 'cS3cr3t+Vq9/ZkW2rTnX8pLmB4yHd7Fo1uJgEa6Ns0Ri5KtUw/Yc+Qx==';
const POST_CLIENT_ID = 'conf-post-client';
const POST_CLIENT_SECRET = 'pS3cr3t-Hn4_Lr8Tq2Wv6Xz0Bc5Dm9Fk3Gj7Pa1Se4Ui8Oy2Ew6Rt0Yq';
const PUBLIC_CLIENT_ID = 'public-client';
const ACCOUNT_ID = 'user-1';
// The second client family: a service that acts as itself (client credentials, RFC 6749 §4.4)
// and a device with no browser (device authorization, RFC 8628). Keep in sync with
// src/oidc_provider.rs of test-support.
const SERVICE_CLIENT_ID = 'service-client';
const SERVICE_CLIENT_SECRET = 'sS3cr3t+Lk2/Mn8Pq4Rs6Tu0Vw3Xy5Za7Bc9De1Fg=';
const DEVICE_CLIENT_ID = 'device-client';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
// The polling interval sent with every device authorization: tiny, so tests stay fast while
// still waiting for it as RFC 8628 requires (oidc-provider sends none, which means 5 s).
const DEVICE_INTERVAL = 1;
// The resource server (RFC 8707) that client credentials tokens may be asked for.
const API_RESOURCE = 'https://api.example.test/';

const GRANTS = ['authorization_code', 'refresh_token'];

// Test controls (POST only, never used by a client under test):
// - /_test/slow-down?count=N: the next N device-grant polls are answered `slow_down`
//   (oidc-provider itself never sends it);
// - /_test/expire-device-codes: every device code issued so far expires now, so the next
//   poll is answered `expired_token`;
// - /_test/token-requests (GET): how many requests reached the token endpoint so far.
let slowDowns = 0;
let tokenRequests = 0;

// Minimal in-memory adapter (the built-in one prints a development-only warning).
const stores = new Map();
class MemoryAdapter {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.store = stores.get(name);
  }

  static byGrant = new Map(); // grantId -> Set of `${name}:${id}`

  async upsert(id, payload, expiresIn) {
    const exp = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    this.store.set(id, { payload, exp });
    if (payload.grantId) {
      if (!MemoryAdapter.byGrant.has(payload.grantId)) MemoryAdapter.byGrant.set(payload.grantId, new Set());
      MemoryAdapter.byGrant.get(payload.grantId).add(`${this.name}:${id}`);
    }
  }

  async find(id) {
    const entry = this.store.get(id);
    if (!entry) return undefined;
    if (entry.exp !== undefined && entry.exp <= Date.now()) {
      this.store.delete(id);
      return undefined;
    }
    return entry.payload;
  }

  async findByUserCode(userCode) {
    for (const [id, { payload }] of this.store) {
      if (payload.userCode === userCode) return this.find(id);
    }
    return undefined;
  }

  async findByUid(uid) {
    for (const [id, { payload }] of this.store) {
      if (payload.uid === uid) return this.find(id);
    }
    return undefined;
  }

  async consume(id) {
    const entry = this.store.get(id);
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.store.delete(id);
  }

  async revokeByGrantId(grantId) {
    const keys = MemoryAdapter.byGrant.get(grantId);
    if (!keys) return;
    for (const key of keys) {
      const i = key.indexOf(':');
      stores.get(key.slice(0, i))?.delete(key.slice(i + 1));
    }
    MemoryAdapter.byGrant.delete(grantId);
  }
}

// A fresh P-256 key per process (fast to generate, nothing secret is committed).
// ID tokens are therefore signed with ES256 (see clientDefaults).
function generateJwks() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'es256-1', use: 'sig', alg: 'ES256' }],
  };
}

// Bind first: the issuer must contain the port.
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(process.env.OIDC_PROVIDER_PORT || 0), '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const configuration = {
  adapter: MemoryAdapter,
  jwks: generateJwks(),
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url')],
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
  },
  clientDefaults: {
    grant_types: GRANTS,
    id_token_signed_response_alg: 'ES256', // the only key is a P-256 one
    response_types: ['code'],
  },
  clients: [
    {
      client_id: CONFIDENTIAL_CLIENT_ID,
      client_secret: CONFIDENTIAL_CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      application_type: 'web', // web clients may use http redirect URIs with the code flow
      grant_types: GRANTS,
      response_types: ['code'],
      redirect_uris: [REDIRECT_URI],
    },
    {
      client_id: POST_CLIENT_ID,
      client_secret: POST_CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_post',
      application_type: 'web',
      grant_types: GRANTS,
      response_types: ['code'],
      redirect_uris: [REDIRECT_URI],
    },
    {
      client_id: SERVICE_CLIENT_ID,
      client_secret: SERVICE_CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'api:read api:write',
    },
    {
      client_id: DEVICE_CLIENT_ID,
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: PUBLIC_CLIENT_ID,
      token_endpoint_auth_method: 'none',
      application_type: 'web',
      grant_types: GRANTS,
      response_types: ['code'],
      redirect_uris: [REDIRECT_URI],
    },
  ],
  // OAuth 2.0 scopes beyond the OIDC ones, so scope handling can be tested without `openid`.
  scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.test`, email_verified: true, name: 'Test User' };
      },
    };
  },
  responseTypes: ['code'],
  pkce: {
    methods: ['S256'],
    required: () => true,
  },
  // A refresh token for every code exchange by a client allowed the refresh_token grant,
  // whatever the scope (no offline_access / prompt=consent needed).
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  // Every use rotates; reusing a rotated token revokes the whole grant.
  rotateRefreshToken: true,
  // Tokens do not die with the browser session.
  async expiresWithSession() {
    return false;
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 14 * 24 * 3600,
    ClientCredentials: 3600,
    DeviceCode: 600,
  },
  features: {
    devInteractions: { enabled: false },
    introspection: {
      enabled: true,
      // Same as the library default, without its "you SHOULD change" notice:
      // a public client may only introspect its own tokens.
      async allowedPolicy(ctx, client, token) {
        return !(client.clientAuthMethod === 'none' && token.clientId !== ctx.oidc.client.clientId);
      },
    },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Only client credentials requests name a resource here; the code flow never does.
      async defaultResource(ctx, client, oneOf) {
        return oneOf || undefined;
      },
      async useGrantedResource() {
        return false;
      },
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== API_RESOURCE) {
          throw new errors.InvalidTarget();
        }
        return { scope: 'api:read api:write', audience: API_RESOURCE, accessTokenFormat: 'opaque' };
      },
    },
    deviceFlow: {
      enabled: true,
      // Plain pages with the library's forms (the defaults print a "customize me" notice).
      async userCodeInputSource(ctx, form, out, err) {
        const msg = err ? `<p class="error">${err.name}</p>` : '<p>Enter the code shown on your device</p>';
        ctx.body = page('Sign-in', `${msg}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
      },
      async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
        ctx.body = page('Confirm device', `<p>${client.clientId} shows <code>${userCode}</code></p>${form}
<button type="submit" form="op.deviceConfirmForm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" value="yes" name="abort">Abort</button>`);
      },
      async successSource(ctx) {
        ctx.body = page('Sign-in Success', '<p>Your device is signed in. You can close this page.</p>');
      },
    },
  },
  clientBasedCORS: () => false,
  interactions: {
    url(ctx, interaction) {
      return `/interaction/${interaction.uid}`;
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'application/json';
    ctx.body = out;
  },
};

const provider = new Provider(issuer, configuration);

provider.on('server_error', (ctx, err) => {
  console.error('oidc-provider server_error:', ctx?.method, ctx?.path, err);
});

// Test controls, and the `interval` oidc-provider leaves out of device authorization responses.
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/_test/slow-down') {
    slowDowns = Number(ctx.query.count || 1);
    ctx.status = 204;
    return undefined;
  }
  if (ctx.method === 'POST' && ctx.path === '/_test/expire-device-codes') {
    const now = Math.floor(Date.now() / 1000);
    for (const { payload } of stores.get('DeviceCode')?.values() ?? []) payload.exp = now - 1;
    ctx.status = 204;
    return undefined;
  }
  if (ctx.method === 'GET' && ctx.path === '/_test/token-requests') {
    ctx.type = 'application/json';
    ctx.body = { count: tokenRequests };
    return undefined;
  }
  if (ctx.method === 'POST' && ctx.path === '/token') tokenRequests += 1;
  if (ctx.method === 'POST' && ctx.path === '/token' && slowDowns > 0) {
    slowDowns -= 1;
    ctx.status = 400;
    ctx.type = 'application/json';
    ctx.body = { error: 'slow_down', error_description: 'polling too fast (test control)' };
    return undefined;
  }
  await next();
  if (ctx.path === '/device/auth' && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
    ctx.body.interval = DEVICE_INTERVAL;
  }
  return undefined;
});

// Device logins are done by hand, as a person would: a sign-in form, then a consent form.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(?:\/(login|consent))?\/?$/.exec(ctx.path);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.params.client_id !== DEVICE_CLIENT_ID) return next();
  const { uid, prompt, params, session } = details;
  const step = match[2];
  if (ctx.method === 'GET' && !step) {
    if (prompt.name === 'login') {
      ctx.body = page('Sign in', `<form method="post" action="/interaction/${uid}/login">
<input type="text" name="login" placeholder="account"/><input type="password" name="password"/>
<button type="submit">Sign in</button></form>`);
    } else {
      ctx.body = page('Consent', `<p>${params.client_id} asks for ${params.scope}</p>
<form method="post" action="/interaction/${uid}/consent"><input type="hidden" name="decision" value="allow"/>
<button type="submit">Allow</button></form>`);
    }
    ctx.type = 'html';
    return undefined;
  }
  if (ctx.method !== 'POST' || !step) return next();
  const form = await readForm(ctx.req);
  let result;
  if (step === 'login') {
    const login = form.get('login');
    result = login ? { login: { accountId: login } } : { error: 'access_denied', error_description: 'no account' };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    if (missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    result = { consent: { grantId: await grant.save() } };
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: false,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
  ctx.status = 303;
  return undefined;
});

// Automatic interactions: log in ACCOUNT_ID, then grant everything that was asked for.
// The user agent only has to keep cookies and follow (relative and absolute) redirects.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)\/?$/.exec(ctx.path);
  if (!match || ctx.method !== 'GET') {
    return next();
  }

  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;
  let result;

  if (prompt.name === 'login') {
    result = { login: { accountId: ACCOUNT_ID } };
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    if (missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` };
  }

  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: false,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
  ctx.status = 303;
  return undefined;
});

server.on('request', provider.callback());
server.on('error', (err) => {
  console.error('http server error:', err);
});

// Die with the test process: it holds our stdin open for as long as it lives.
const exit = () => process.exit(0);
process.on('SIGTERM', exit);
process.on('SIGINT', exit);
process.stdin.on('end', exit);
process.stdin.on('close', exit);
process.stdin.on('error', exit);
process.stdin.resume();

process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
