// Test peer for the auth-oauth2 integration tests: oidc-provider (OpenID Certified, by panva)
// on 127.0.0.1, with logins and consent completed automatically.
//
// Protocol with the test process (see tests/support/oidc_provider.rs):
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

const { default: Provider } = await import('oidc-provider');

// Fixed test credentials. The secret deliberately uses the base64 alphabet ('+', '/', '='):
// oidc-provider form-decodes HTTP Basic credentials, so a client that does not
// application/x-www-form-urlencode the id and secret before Basic encoding (RFC 6749 §2.3.1)
// fails with invalid_client. Keep in sync with tests/support/oidc_provider.rs.
const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const CONFIDENTIAL_CLIENT_ID = 'conf-client';
const CONFIDENTIAL_CLIENT_SECRET = 'cS3cr3t+Vq9/ZkW2rTnX8pLmB4yHd7Fo1uJgEa6Ns0Ri5KtUw/Yc+Qx==';
const POST_CLIENT_ID = 'conf-post-client';
const POST_CLIENT_SECRET = 'pS3cr3t-Hn4_Lr8Tq2Wv6Xz0Bc5Dm9Fk3Gj7Pa1Se4Ui8Oy2Ew6Rt0Yq';
const PUBLIC_CLIENT_ID = 'public-client';
const ACCOUNT_ID = 'user-1';

const GRANTS = ['authorization_code', 'refresh_token'];

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
