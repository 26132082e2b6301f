// A real OpenID Connect provider for the sign-in tests (tests/it/oidc.rs): panva's oidc-provider (OpenID
// Certified), with its development login pages, on a port of its own choosing on 127.0.0.1.
//
//   node provider.mjs REDIRECT_URI [CLIENT_SECRET]
//
// prints `ready PORT` once it answers. Test accounts are added with `POST /__test/account` (JSON: sub, email,
// email_verified, name, groups); the login page's "login" field is the account's `sub`.
//
// Faults, for the ID token checks: `POST /__test/fault` with JSON {"mode": M} makes every later token response
// carry an ID token changed after the provider signed it:
//   aud, iss, nonce, expired   the claim changed, then signed again with the provider's own key
//   unsigned                   alg "none", no signature
//   other-key                  signed by a key the provider never published, under the published key's id
//   hmac-public                HS256 with the published public key as the shared secret
//   rotate                     signed by a new key that the JWKS now publishes too (a key rotation)
//   none                       no change
import http from 'node:http';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const [redirectUri, clientSecret = 'test-client-secret'] = process.argv.slice(2);
if (!redirectUri) {
  console.error('usage: node provider.mjs REDIRECT_URI [CLIENT_SECRET]');
  process.exit(2);
}

async function rsaKey(kid) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid, alg: 'RS256', use: 'sig' };
}
const publicPart = ({ d, p, q, dp, dq, qi, ...pub }) => pub;

const signingKey = await rsaKey('key-1');
const rotatedKey = await rsaKey('key-2');
const strangerKey = await rsaKey('key-1'); // same id as the real one, never published

const accounts = new Map();
let fault = 'none';

async function resign(idToken) {
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  const sign = async (payload, key) => new jose.SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', kid: key.kid })
    .sign(await jose.importJWK(key, 'RS256'));
  switch (fault) {
    case 'aud': return sign({ ...claims, aud: 'someone-else' }, signingKey);
    case 'iss': return sign({ ...claims, iss: 'https://issuer.invalid' }, signingKey);
    case 'nonce': return sign({ ...claims, nonce: 'not-the-nonce' }, signingKey);
    case 'expired': return sign({ ...claims, iat: now - 7200, exp: now - 3600 }, signingKey);
    case 'unsigned': return new jose.UnsecuredJWT(claims).encode();
    case 'other-key': return sign(claims, strangerKey);
    case 'hmac-public': {
      const secret = new TextEncoder().encode(JSON.stringify(publicPart(signingKey)));
      return new jose.SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: signingKey.kid }).sign(secret);
    }
    case 'rotate': return sign(claims, rotatedKey);
    default: return idToken;
  }
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'llmeta',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['a test cookie key that is long enough'] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const account = accounts.get(id);
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...account };
      },
    };
  },
});

// The test's own endpoints, and the faults applied to what the provider answers.
provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/__test/')) {
    const body = await new Promise((resolve) => {
      let data = '';
      ctx.req.on('data', (c) => { data += c; });
      ctx.req.on('end', () => resolve(data ? JSON.parse(data) : {}));
    });
    if (ctx.path === '/__test/account') {
      const { sub, ...claims } = body;
      accounts.set(sub, claims);
    } else if (ctx.path === '/__test/fault') {
      fault = body.mode;
    } else {
      ctx.status = 404;
      return;
    }
    ctx.body = { ok: true };
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: await resign(ctx.body.id_token) };
  }
  if (ctx.path === '/jwks' && fault === 'rotate' && ctx.body && ctx.body.keys) {
    ctx.body = { keys: [...ctx.body.keys, publicPart(rotatedKey)] };
  }
});

server.on('request', provider.callback());
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
console.log(`ready ${port}`);
