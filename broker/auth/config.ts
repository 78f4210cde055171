// Configuration types of the auth chain and its sources: the part of the broker config the
// operator renders from AuthSource CRs (operator/resources/broker-config.ts). Paths (`*File`) point
// at mounted Secret files, which the broker re-reads when they change; secrets themselves never
// appear inline in the config. Validated at start by source-schema.ts (unknown fields refused).
// Semantics: docs/auth-semantics.md; placeholders: placeholders.ts.

/** What a source's backend failure (error, timeout, unreachable) means: deny the request, or skip to the next source. Default deny. */
export type OnBackendFailure = 'deny' | 'ignore';

/** How stored passwords are hashed (EMQX `password_hash_algorithm`). Default when absent: sha256, salt prefix. */
export interface PasswordHashConfig {
  /** plain (migration only) | md5 | sha (SHA-1) | sha256 | sha512 (hex digests) | bcrypt ($2b$… string) | pbkdf2 (hex). */
  algorithm: 'plain' | 'md5' | 'sha' | 'sha256' | 'sha512' | 'bcrypt' | 'pbkdf2';
  /** Digests and plain: hash of salt‖password (prefix, default), password‖salt (suffix), or password alone (disable). */
  saltPosition?: 'prefix' | 'suffix' | 'disable';
  /** pbkdf2 only (required): the HMAC digest. */
  macFun?: 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
  /** pbkdf2 only (required): iteration count. */
  iterations?: number;
  /** pbkdf2 only: derived key length in bytes (default: the digest size). */
  dkLength?: number;
}

/** TLS towards a backend (database, Redis, HTTP service). */
export interface BackendTls {
  enabled: boolean;
  /** CA bundle that signs the backend's certificate (default: the system roots). */
  caFile?: string;
  /** Client certificate and key, when the backend wants mutual TLS. */
  certFile?: string;
  keyFile?: string;
  /** SNI / name to verify, when it differs from `host`. */
  serverName?: string;
  /** Default true; false only for tests against self-signed backends. */
  verify?: boolean;
}

interface SourceCommon {
  /** Default 'deny'. */
  onBackendFailure?: OnBackendFailure;
  /**
   * Per-call timeout in milliseconds (default 5000). A failing source then fails fast for a backoff (100 ms doubling to
   * 10 s), after which one probe call at a time is let through; at most 64 calls (or twice `poolSize`) wait on a source.
   */
  timeoutMs?: number;
}

export interface BuiltinSourceConfig extends SourceCommon {
  type: 'builtin';
  /**
   * YAML/JSON file: { users: [{username, password_hash, salt?, is_superuser?}], acl: [{username?, clientid?, ipaddr?, permission,
   * action, topic|topics, qos?, retain?}] }. A rule without username/clientid/ipaddr applies to everyone. Re-read on change;
   * a file that does not parse keeps the previous content in force.
   */
  dataFile: string;
  passwordHash: PasswordHashConfig;
}

export interface SqlSourceConfig extends SourceCommon {
  type: 'postgres' | 'mysql';
  host: string;
  port: number;
  database: string;
  /** File holding the database username (wins over `username`). */
  usernameFile?: string;
  /** Database username, when it is not secret. */
  username?: string;
  /** File holding the database password; a change rebuilds the pool with the new credentials. */
  passwordFile?: string;
  tls?: BackendTls;
  /** Connections in the pool (default 8). */
  poolSize?: number;
  /**
   * Returns one row with `password_hash` (or EMQX 4 `password`), optional `salt`, optional `is_superuser`; no row = ignore.
   * Default `SELECT * FROM mqtt_user WHERE username = ${username} LIMIT 1` (EMQX 4 and 5 tables as they are).
   * Placeholders ${username} ${clientid} ${peerhost} ${cert_common_name} ${cert_subject} ${password} (and %u %c %a %C %d %P) are bound parameters.
   */
  authQuery?: string;
  /** Optional: first row's `is_superuser` (or first column) decides the superuser flag instead of authQuery's row. */
  superuserQuery?: string;
  /**
   * Returns ACL rows tried in order, first match wins: EMQX 5 `permission, action, topic, qos, retain` or EMQX 4 `allow, ipaddr,
   * username, clientid, access, topic` ($all = everyone). Default: EMQX 4's query over `mqtt_acl`, ORDER BY id.
   */
  aclQuery?: string;
  passwordHash: PasswordHashConfig;
}

export interface RedisSourceConfig extends SourceCommon {
  type: 'redis';
  host: string;
  port: number;
  /** Database number (default 0). */
  db?: number;
  /** Files holding the Redis ACL username / password (AUTH). */
  usernameFile?: string;
  passwordFile?: string;
  tls?: BackendTls;
  /** HMGET | HGET | HGETALL. Default "HMGET mqtt_user:${username} password_hash salt is_superuser password". */
  authCommand?: string;
  /** HGETALL only; field = topic filter, value = publish|subscribe|all|1|2|3|JSON; allow-only. Default "HGETALL mqtt_acl:${username}". */
  aclCommand?: string;
  passwordHash: PasswordHashConfig;
}

export interface HttpSourceConfig extends SourceCommon {
  type: 'http';
  /** Authentication endpoint; placeholders allowed (percent-encoded), except ${password} / %P (URLs end up in access logs). */
  url: string;
  method: 'GET' | 'POST';
  /** POST body encoding (default json); GET sends the body fields as query parameters. */
  bodyFormat?: 'json' | 'form';
  /** Extra request headers; placeholders allowed (no ${password}). */
  headers?: Record<string, string>;
  /**
   * Template values: placeholders allowed. Default { username, password, clientid, peerhost }. Required with GET, which
   * sends them as query parameters and therefore refuses ${password} / %P in them.
   */
  body?: Record<string, string>;
  /** Separate endpoint for authorization requests (body fields without password, plus topic, action, qos, retain); unset = this source does not authorize. */
  aclUrl?: string;
  /** File holding a bearer token sent as `Authorization: Bearer …`; re-read on change. */
  bearerTokenFile?: string;
  tls?: BackendTls;
}

export interface JwtSourceConfig extends SourceCommon {
  type: 'jwt';
  /** Where the token is carried in CONNECT. */
  from: 'password' | 'username';
  /** Exactly one of secretFile | publicKeyFile | jwksFile | jwksUrl. HMAC secret (HS256/384/512). */
  secretFile?: string;
  /** The secret file holds base64 (default: raw text). */
  secretBase64?: boolean;
  /** PEM public key (RSA, EC, Ed25519). */
  publicKeyFile?: string;
  /** JWKS JSON document. */
  jwksFile?: string;
  /** JWKS endpoint; keys cached for jwksRefreshSeconds (default 300); fetch failure = backend failure. */
  jwksUrl?: string;
  jwksRefreshSeconds?: number;
  /** Accepted algorithms (default: HS256-512 for a secret; RS, PS, ES and EdDSA for keys). */
  algorithms?: string[];
  /** Required `iss` / `aud`. */
  issuer?: string;
  audience?: string;
  /** Claim → template that must equal it, e.g. { clientid: "${clientid}" } (${clientid} and ${username} only). */
  verifyClaims?: Record<string, string>;
  /** Claim carrying the ACL (EMQX list or {pub, sub, all} map). Default "acl". */
  aclClaim?: string;
  /** Default true: `exp` becomes expiresAt and the broker disconnects the client then. */
  disconnectOnExpiry?: boolean;
}

export interface X509SourceConfig extends SourceCommon {
  type: 'x509';
  /** Which verified-certificate field is the identity; a client that sends a username must send exactly that identity. */
  identityFrom: 'cn' | 'dns' | 'email' | 'uri' | 'subject';
  /** Identities that are superusers. */
  superusers?: string[];
}

export type AuthSourceConfig =
  | BuiltinSourceConfig
  | SqlSourceConfig
  | RedisSourceConfig
  | HttpSourceConfig
  | JwtSourceConfig
  | X509SourceConfig;

export interface AuthenticationConfig {
  /** Names of `sources` entries, in order; each must be able to authenticate (x509 and jwt cannot authorize). */
  chain: string[];
  /** When every source ignores the client (unknown user, no token): allow as a non-superuser. Default false. */
  allowAnonymous: boolean;
}

export interface AuthorizationConfig {
  /** Names of `sources` entries that answer publish/subscribe checks, in order (builtin, postgres, mysql, redis, http with aclUrl). */
  chain: string[];
  /** Decision when no rule matched anywhere. */
  noMatch: 'allow' | 'deny';
  /** Denied PUBLISH: answer with a failure code (ignore) or close the connection (disconnect). A denied SUBSCRIBE filter always gets a failure code in SUBACK. */
  denyAction: 'ignore' | 'disconnect';
  /** Per-connection decision cache; cleared when a source reloads its data or credentials. */
  cache: { enabled: boolean; maxSize: number; ttlSeconds: number };
}
