// Configuration types of the auth chain and its sources: the part of the broker config the
// operator renders from AuthSource CRs. Paths (`*File`) point at mounted Secret files, which the
// broker re-reads when they change; secrets themselves never appear inline in the config.

export type OnBackendFailure = 'deny' | 'ignore';

export interface PasswordHashConfig {
  algorithm: 'plain' | 'md5' | 'sha' | 'sha256' | 'sha512' | 'bcrypt' | 'pbkdf2';
  /** Where the salt goes for the digest algorithms (EMQX `salt_position`). */
  saltPosition?: 'prefix' | 'suffix' | 'disable';
  /** pbkdf2 only. */
  macFun?: 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
  iterations?: number;
  dkLength?: number;
}

export interface BackendTls {
  enabled: boolean;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
  /** Default true; false only for tests against self-signed backends. */
  verify?: boolean;
}

interface SourceCommon {
  onBackendFailure?: OnBackendFailure;
  /** Per-call timeout in milliseconds. */
  timeoutMs?: number;
}

export interface BuiltinSourceConfig extends SourceCommon {
  type: 'builtin';
  /** YAML/JSON file: { users: [{username, password_hash, salt?, is_superuser?}], acl: [{username?, clientid?, permission, action, topic, qos?, retain?}] } */
  dataFile: string;
  passwordHash: PasswordHashConfig;
}

export interface SqlSourceConfig extends SourceCommon {
  type: 'postgres' | 'mysql';
  host: string;
  port: number;
  database: string;
  /** File holding the database username / password. */
  usernameFile?: string;
  username?: string;
  passwordFile?: string;
  tls?: BackendTls;
  poolSize?: number;
  authQuery?: string;
  superuserQuery?: string;
  aclQuery?: string;
  passwordHash: PasswordHashConfig;
}

export interface RedisSourceConfig extends SourceCommon {
  type: 'redis';
  host: string;
  port: number;
  db?: number;
  usernameFile?: string;
  passwordFile?: string;
  tls?: BackendTls;
  /** e.g. "HMGET mqtt_user:${username} password_hash salt is_superuser" */
  authCommand?: string;
  /** e.g. "HGETALL mqtt_acl:${username}" */
  aclCommand?: string;
  passwordHash: PasswordHashConfig;
}

export interface HttpSourceConfig extends SourceCommon {
  type: 'http';
  url: string;
  method: 'GET' | 'POST';
  bodyFormat?: 'json' | 'form';
  headers?: Record<string, string>;
  /** Template values: placeholders allowed. */
  body?: Record<string, string>;
  /** Separate endpoint for authorization requests; unset = this source does not authorize. */
  aclUrl?: string;
  bearerTokenFile?: string;
  tls?: BackendTls;
}

export interface JwtSourceConfig extends SourceCommon {
  type: 'jwt';
  /** Where the token is carried in CONNECT. */
  from: 'password' | 'username';
  secretFile?: string;
  secretBase64?: boolean;
  publicKeyFile?: string;
  jwksFile?: string;
  jwksUrl?: string;
  jwksRefreshSeconds?: number;
  algorithms?: string[];
  issuer?: string;
  audience?: string;
  /** Claim → template that must equal it, e.g. { clientid: "${clientid}" }. */
  verifyClaims?: Record<string, string>;
  aclClaim?: string;
  disconnectOnExpiry?: boolean;
}

export interface X509SourceConfig extends SourceCommon {
  type: 'x509';
  /** Which certificate field becomes the MQTT username. */
  identityFrom: 'cn' | 'dns' | 'email' | 'uri' | 'subject';
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
  /** Names of `sources` entries, in order. */
  chain: string[];
  allowAnonymous: boolean;
}

export interface AuthorizationConfig {
  chain: string[];
  noMatch: 'allow' | 'deny';
  denyAction: 'ignore' | 'disconnect';
  cache: { enabled: boolean; maxSize: number; ttlSeconds: number };
}
