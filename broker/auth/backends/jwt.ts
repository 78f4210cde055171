// Owns the `jwt` source (jose): the token comes in CONNECT's password (or username) and is verified
// with an HMAC secret file, a PEM public key file, a JWKS file or a JWKS URL (cached). Like EMQX:
// no token / not a JWT / bad signature → ignore (another source may own this password); expired,
// not yet valid, wrong iss/aud or a failed `verifyClaims` template → deny. The `acl` claim (EMQX
// list or old pub/sub map) travels with the client; `exp` becomes expiresAt so the broker
// disconnects then. A JWKS URL that cannot be fetched (unreachable, timeout, non-200, not a key set)
// is a backend failure (→ onBackendFailure), never "not ours".
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { JwtSourceConfig } from '../config.ts';
import { parseAclClaim, type Rule } from '../acl.ts';
import { compileValue, type PlaceholderName } from '../placeholders.ts';
import { BackendError, isTruthySuperuser, valuesOfAttempt, type AuthSource, type SourceContext, type SourceAuthnResult } from '../source.ts';
import { watchTextFile, type WatchedFile } from '../../mounted-files.ts';

const claimVars = new Set<PlaceholderName>(['username', 'clientid']);
const hmacAlgs = ['HS256', 'HS384', 'HS512'];
const asymmetricAlgs = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
/** A CONNECT password is at most 65535 bytes; anything near that is not a token we sign. */
const maxTokenLength = 16 * 1024;

type KeySource = { kind: 'static'; key: () => Uint8Array | KeyObject } | { kind: 'jwks'; get: JWTVerifyGetKey };

/** What the key set says about a token (no key for its kid/alg, ambiguous, unsupported alg): the token is not ours. */
function isKeySelectionError(err: unknown): boolean {
  return err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSENotSupported;
}

/**
 * jose's cached remote key set, with every failure to obtain the set turned into a BackendError:
 * jose reports a non-200 answer or a body that is not JSON as a plain JOSEError, which would
 * otherwise read as "bad token" and ignore a dead identity provider.
 */
function remoteKeySet(name: string, url: URL, refreshMs: number, timeoutMs: number): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(url, { cacheMaxAge: refreshMs, cooldownDuration: 30_000, timeoutDuration: timeoutMs });
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      if (isKeySelectionError(err)) throw err;
      throw new BackendError(name, `JWKS ${url.origin}${url.pathname} unavailable: ${(err as Error).message}`, { cause: err });
    }
  };
}

/** A JWKS file (a mounted Secret) as a key set; a parse error says where, never quotes the file (V8's message does). */
function localKeySet(text: string, file: string): JWTVerifyGetKey {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    // eslint-disable-next-line preserve-caught-error -- the cause would quote the Secret's content
    throw new Error(`${file}: not valid JSON${at === undefined ? '' : ` (at character ${at})`}`);
  }
  return createLocalJWKSet(parsed as Parameters<typeof createLocalJWKSet>[0]);
}

/** Where the verification keys come from, the algorithms they allow, and the files watched for them. */
interface Keys {
  source: KeySource;
  algorithms: string[];
  watchers: WatchedFile[];
}

/** The key source the config names: an HMAC secret file, a PEM public key file, a JWKS file or a JWKS URL. */
function keysOf(c: JwtSourceConfig, ctx: SourceContext): Keys {
  const reload = (): void => ctx.dataChanged();
  const watch = (file: string, trim: boolean): WatchedFile => watchTextFile(file, reload, { intervalMs: ctx.watchIntervalMs, trim });
  if (c.secretFile) {
    const f = watch(c.secretFile, true);
    const key = (): Uint8Array => (c.secretBase64 ? Buffer.from(f.current(), 'base64') : Buffer.from(f.current(), 'utf8'));
    return { source: { kind: 'static', key }, algorithms: c.algorithms ?? hmacAlgs, watchers: [f] };
  }
  if (c.publicKeyFile) {
    const f = watch(c.publicKeyFile, false);
    let cached = { pem: f.current(), key: createPublicKey(f.current()) };
    const key = (): KeyObject => {
      if (cached.pem !== f.current()) cached = { pem: f.current(), key: createPublicKey(f.current()) };
      return cached.key;
    };
    return { source: { kind: 'static', key }, algorithms: c.algorithms ?? asymmetricAlgs, watchers: [f] };
  }
  if (c.jwksFile) {
    const jwksFile = c.jwksFile;
    const f = watch(jwksFile, false);
    let cached = { text: f.current(), get: localKeySet(f.current(), jwksFile) };
    const get: JWTVerifyGetKey = (header, token) => {
      if (cached.text !== f.current()) cached = { text: f.current(), get: localKeySet(f.current(), jwksFile) };
      return cached.get(header, token);
    };
    return { source: { kind: 'jwks', get }, algorithms: c.algorithms ?? asymmetricAlgs, watchers: [f] };
  }
  if (c.jwksUrl) {
    const refresh = (c.jwksRefreshSeconds ?? 300) * 1000;
    const get = remoteKeySet(ctx.name, new URL(c.jwksUrl), refresh, c.timeoutMs ?? 5000);
    return { source: { kind: 'jwks', get }, algorithms: c.algorithms ?? asymmetricAlgs, watchers: [] };
  }
  throw new Error(`jwt source "${ctx.name}": one of secretFile, publicKeyFile, jwksFile, jwksUrl is required`);
}

type VerifiedToken = { claims: JWTPayload } | SourceAuthnResult;

/** The token's claims when it verifies; ignore when it is not ours, deny when it is ours but not valid now. */
async function verifyToken(token: string, keys: Keys, c: JwtSourceConfig): Promise<VerifiedToken> {
  const opts = { algorithms: keys.algorithms, ...(c.issuer ? { issuer: c.issuer } : {}), ...(c.audience ? { audience: c.audience } : {}) };
  try {
    const ks = keys.source;
    const result = ks.kind === 'static' ? await jwtVerify(token, ks.key(), opts) : await jwtVerify(token, ks.get, opts);
    return { claims: result.payload };
  } catch (err) {
    if (err instanceof errors.JWTExpired || err instanceof errors.JWTClaimValidationFailed) {
      return { decision: 'deny', reason: 'bad-credentials' };
    }
    if (err instanceof errors.JOSEError) return { decision: 'ignore' }; // not ours: bad signature, unknown kid, malformed
    throw err; // BackendError from the key set, or a bug
  }
}

export function createJwtSource(c: JwtSourceConfig, ctx: SourceContext): AuthSource {
  const keys = keysOf(c, ctx);
  const verifyClaims = Object.entries(c.verifyClaims ?? {}).map(([claim, t]) => [claim, compileValue(t, claimVars)] as const);
  const aclClaim = c.aclClaim ?? 'acl';
  return {
    name: ctx.name,
    type: 'jwt',
    async authenticate(attempt): Promise<SourceAuthnResult> {
      const token = c.from === 'username' ? attempt.username : attempt.password?.toString('utf8');
      if (!token || token.length > maxTokenLength || token.split('.').length !== 3) return { decision: 'ignore' };
      const verified = await verifyToken(token, keys, c);
      if (!('claims' in verified)) return verified;
      const claims = verified.claims;
      const v = valuesOfAttempt(attempt);
      for (const [claim, expected] of verifyClaims) {
        const actual = claims[claim];
        if (typeof actual !== 'string' || actual !== expected(v) || actual === '') return { decision: 'deny', reason: 'bad-credentials' };
      }
      let acl: Rule[] | undefined;
      if (claims[aclClaim] !== undefined) {
        try {
          acl = parseAclClaim(claims[aclClaim]);
        } catch {
          return { decision: 'deny', reason: 'bad-credentials' };
        }
      }
      const expiresAt = typeof claims.exp === 'number' && c.disconnectOnExpiry !== false ? new Date(claims.exp * 1000) : undefined;
      return { decision: 'allow', superuser: isTruthySuperuser(claims.is_superuser), ...(acl ? { acl } : {}), ...(expiresAt ? { expiresAt } : {}) };
    },
    async close() {
      keys.watchers.forEach((w) => w.stop());
    },
  };
}
