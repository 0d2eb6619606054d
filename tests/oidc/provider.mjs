// A real OpenID provider for the SSO end-to-end tests: the `oidc-provider` package
// (pinned in package.json, installed by scripts/test into tests/oidc/node_modules) with
// minimal interactions of our own and a test hook that spoils ID tokens on purpose.
//
//   node tests/oidc/provider.mjs CONFIG.json
//
// CONFIG: { "port": 40123,
//           "clients": [ { "client_id", "client_secret", "redirect_uris": [..],
//                          "post_logout_redirect_uris": [..], "backchannel_logout_uri" } ],
//           "accounts": { "alice": { "email", "email_verified", "groups": [..], "name",
//                                    "amr": [..], "acr" } } }
//
// The issuer is http://127.0.0.1:PORT (no trailing slash); it listens on 127.0.0.1 only.
// Pages (ids and names are what the tests drive):
//   GET  /interaction/:uid        sign-in page: form#login-form (POST /interaction/:uid/login)
//                                 with input#login[name=login], input#password[name=password],
//                                 button#submit. Any password is accepted; an unknown login
//                                 shows the page again (200) with p#error.
//                                 The consent prompt is answered by itself (all requested
//                                 scopes and claims granted), no page.
//   GET  /session/end             logout page: form#logout-form (the provider's own form, with
//                                 its hidden xsrf input) and button#logout-yes[name=logout][value=yes].
//                                 Confirming sends the back-channel logout tokens (POST,
//                                 application/x-www-form-urlencoded, field logout_token) to
//                                 every client of the session before it answers.
//   POST /_test/mode              {"id_token": "normal" | "wrong_nonce" | "wrong_aud" | "expired"
//                                 | "bad_signature" | "wrong_iss"}: every token endpoint
//                                 response's id_token is rewritten so until set back to normal.
//   GET  /_test/health            200 "ok".
// Logs go to stderr only.

import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';
import * as jose from 'jose';

// Everything this process prints goes to stderr (oidc-provider's notices use console.info).
console.log = console.error;
console.info = console.error;
const log = (...args) => console.error('[oidc-provider]', ...args);

// Exit promptly on SIGTERM (and Ctrl-C), also while still starting up.
let server;
function stop(signal) {
  log(`${signal}: exiting`);
  server?.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node tests/oidc/provider.mjs CONFIG.json');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const port = Number(config.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`bad "port" in ${configPath}: ${config.port}`);
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const accounts = config.accounts || {};

// The signing key, new at every start.
const KID = `test-${randomBytes(6).toString('hex')}`;
const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: KID, alg: 'RS256', use: 'sig' };

const clients = (config.clients || []).map((c) => ({
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  ...(c.backchannel_logout_uri ? { backchannel_logout_session_required: true } : {}),
  ...c,
}));

const acrValues = [...new Set(Object.values(accounts).map((a) => a.acr).filter(Boolean))];

const html = (s) => String(s).replace(/[&<>"']/g, (ch) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[ch]));

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${html(title)}</title></head>
<body>
<h1>${html(title)}</h1>
${body}
</body></html>`;
}

function loginPage(uid, { error, login } = {}) {
  return page('Sign in to the test IdP', `${error ? `<p id="error">${html(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${html(uid)}/login" autocomplete="off">
<label>Login <input id="login" name="login" value="${html(login || '')}" autofocus></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="submit" type="submit">Sign in</button>
</form>`);
}

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingJwk] },
  async findAccount(ctx, sub) {
    const account = accounts[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: account.email,
          email_verified: account.email_verified,
          groups: account.groups || [],
          name: account.name || sub,
        };
      },
    };
  },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  claims: {
    // acr, amr and auth_time (from the sign-in) in every ID token, not only when requested.
    openid: ['sub', 'acr', 'amr', 'auth_time'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
    profile: ['name'],
  },
  acrValues,
  // Scope claims in the ID token too, not only from userinfo.
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { methods: ['S256'], required: () => true },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        // `form` is the provider's <form id="op.logoutForm" ...> with the xsrf hidden input.
        const ours = form.replace('id="op.logoutForm"', 'id="logout-form"');
        ctx.type = 'html';
        ctx.body = page('Sign out of the test IdP?', `${ours}
<button id="logout-yes" type="submit" form="logout-form" name="logout" value="yes">Yes, sign me out</button>
<button id="logout-no" type="submit" form="logout-form">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Signed out of the test IdP', '<p id="signed-out">You are signed out.</p>');
      },
    },
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  cookies: {
    // Per port: the gateway and every test IdP share the host 127.0.0.1 in a browser's jar.
    names: {
      session: `op${port}_session`,
      interaction: `op${port}_interaction`,
      resume: `op${port}_interaction_resume`,
    },
    // Lax rather than None: a browser drops SameSite=None cookies that are not Secure (http).
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
    keys: [randomBytes(32).toString('hex')],
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
  },
  async renderError(ctx, out, error) {
    log('error page:', out.error, out.error_description || '', error?.stack || '');
    ctx.type = 'html';
    ctx.body = page('Test IdP error', `<pre id="error">${html(JSON.stringify(out, null, 2))}</pre>`);
  },
});

provider.on('server_error', (ctx, err) => log('server_error', err));
provider.on('backchannel.error', (ctx, err, client) => log('backchannel logout to', client.clientId, 'failed:', err.message));
provider.on('backchannel.success', (ctx, client) => log('backchannel logout sent to', client.clientId));
provider.on('grant.error', (ctx, err) => log('grant.error', err.message, err.error_description || ''));

// ---- the test hook: spoil ID tokens of token endpoint responses ----

const MODES = new Set(['normal', 'wrong_nonce', 'wrong_aud', 'expired', 'bad_signature', 'wrong_iss']);
let mode = 'normal';
let otherKey; // for bad_signature: another RSA key, presented under the same kid

async function spoil(idToken) {
  const header = jose.decodeProtectedHeader(idToken);
  const claims = jose.decodeJwt(idToken);
  let key = privateKey;
  switch (mode) {
    case 'wrong_nonce':
      claims.nonce = `wrong-${randomBytes(8).toString('hex')}`;
      break;
    case 'wrong_aud':
      claims.aud = 'some-other-client';
      if (claims.azp) claims.azp = 'some-other-client';
      break;
    case 'expired': {
      // Expired an hour ago; issued its usual lifetime before that.
      const now = Math.floor(Date.now() / 1000);
      const lifetime = (claims.exp || now) - (claims.iat || now);
      claims.exp = now - 3600;
      claims.iat = claims.exp - lifetime;
      break;
    }
    case 'wrong_iss':
      claims.iss = 'http://127.0.0.1:1';
      break;
    case 'bad_signature':
      otherKey ||= (await jose.generateKeyPair('RS256')).privateKey;
      key = otherKey;
      break;
    default:
      return idToken;
  }
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: header.alg, typ: header.typ, kid: header.kid })
    .sign(key);
}

async function readBody(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const tokenPath = new URL(provider.urlFor('token')).pathname;

provider.use(async (ctx, next) => {
  if (ctx.path === '/_test/health' && ctx.method === 'GET') {
    ctx.type = 'text';
    ctx.body = 'ok';
    return;
  }
  if (ctx.path === '/_test/mode' && ctx.method === 'POST') {
    let wanted;
    try {
      wanted = JSON.parse(await readBody(ctx.req)).id_token;
    } catch (err) {
      wanted = undefined;
    }
    if (!MODES.has(wanted)) {
      ctx.status = 400;
      ctx.body = { error: `id_token must be one of ${[...MODES].join(', ')}` };
      return;
    }
    mode = wanted;
    log('id_token mode:', mode);
    ctx.body = { id_token: mode };
    return;
  }

  await next();

  if (mode !== 'normal' && ctx.path === tokenPath && ctx.status === 200
      && ctx.body && typeof ctx.body === 'object' && typeof ctx.body.id_token === 'string') {
    ctx.body = { ...ctx.body, id_token: await spoil(ctx.body.id_token) };
    log('token response id_token spoiled:', mode);
  }
});

// ---- interactions: sign in, and consent answered by itself ----

provider.use(async (ctx, next) => {
  const m = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
  if (!m) {
    await next();
    return;
  }
  const [, uid, login] = m;
  ctx.set('cache-control', 'no-store');

  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (err) {
    log('interaction', uid, 'not found:', err.message);
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Test IdP error', '<p id="error">This sign-in is no longer valid; start again.</p>');
    return;
  }
  if (details.uid !== uid) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Test IdP error', '<p id="error">This sign-in does not belong to this browser.</p>');
    return;
  }
  const { prompt, params, session } = details;

  if (!login && ctx.method === 'GET') {
    if (prompt.name === 'login') {
      ctx.type = 'html';
      ctx.body = loginPage(uid);
      return;
    }
    if (prompt.name === 'consent') {
      const accountId = session.accountId;
      let grant;
      if (details.grantId) {
        grant = await provider.Grant.find(details.grantId);
      }
      grant ||= new provider.Grant({ accountId, clientId: params.client_id });
      const d = prompt.details || {};
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      log('consent granted for', accountId, 'to', params.client_id, 'scope', params.scope);
      await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      ctx.respond = false;
      return;
    }
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Test IdP error', `<p id="error">Unsupported prompt ${html(prompt.name)}</p>`);
    return;
  }

  if (login && ctx.method === 'POST') {
    if (prompt.name !== 'login') {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page('Test IdP error', '<p id="error">Not a sign-in step.</p>');
      return;
    }
    const form = new URLSearchParams(await readBody(ctx.req));
    const name = (form.get('login') || '').trim();
    const account = accounts[name];
    if (!account) {
      log('unknown login', JSON.stringify(name));
      ctx.type = 'html';
      ctx.body = loginPage(uid, { error: `Unknown account ${name || '(empty)'}.`, login: name });
      return;
    }
    log('signed in', name);
    const result = {
      login: {
        accountId: name,
        ...(account.amr ? { amr: account.amr } : {}),
        ...(account.acr ? { acr: account.acr } : {}),
      },
    };
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.respond = false;
    return;
  }

  ctx.status = 405;
  ctx.body = 'method not allowed';
});

server = provider.listen(port, '127.0.0.1', () => {
  log(`listening, issuer ${issuer}, ${clients.length} client(s), ${Object.keys(accounts).length} account(s)`);
});
server.on('error', (err) => {
  log('cannot listen:', err.message);
  process.exit(1);
});

