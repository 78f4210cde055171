// Owns validation of the `sources` section of the broker config (broker/config.ts leaves each
// source to this module): one JSON schema per source type, unknown fields refused, every problem
// reported with its path (`sources.pg.port: must be integer`). Called by createAuthChain at start,
// so a typo in a rendered config stops the broker with a message instead of denying everyone.
import { Ajv, type ErrorObject } from 'ajv';
import { templateUses } from './placeholders.ts';

const str = { type: 'string', minLength: 1 };
const port = { type: 'integer', minimum: 1, maximum: 65535 };
const common = {
  onBackendFailure: { enum: ['deny', 'ignore'] },
  timeoutMs: { type: 'integer', minimum: 1, maximum: 600_000 },
};
const tls = {
  type: 'object',
  additionalProperties: false,
  required: ['enabled'],
  properties: { enabled: { type: 'boolean' }, caFile: str, certFile: str, keyFile: str, serverName: str, verify: { type: 'boolean' } },
};
const passwordHash = {
  type: 'object',
  additionalProperties: false,
  required: ['algorithm'],
  properties: {
    algorithm: { enum: ['plain', 'md5', 'sha', 'sha256', 'sha512', 'bcrypt', 'pbkdf2'] },
    saltPosition: { enum: ['prefix', 'suffix', 'disable'] },
    macFun: { enum: ['sha1', 'sha224', 'sha256', 'sha384', 'sha512'] },
    iterations: { type: 'integer', minimum: 1 },
    dkLength: { type: 'integer', minimum: 1, maximum: 1024 },
  },
  if: { properties: { algorithm: { const: 'pbkdf2' } } },
  then: { required: ['algorithm', 'macFun', 'iterations'] },
};
const stringMap = { type: 'object', additionalProperties: { type: 'string' } };

const byType: Record<string, object> = {
  builtin: { required: ['dataFile'], properties: { dataFile: str, passwordHash } },
  postgres: {
    required: ['host', 'port', 'database'],
    properties: { host: str, port, database: str, usernameFile: str, username: str, passwordFile: str, tls, poolSize: { type: 'integer', minimum: 1, maximum: 1000 }, authQuery: str, superuserQuery: str, aclQuery: str, passwordHash },
  },
  redis: {
    required: ['host', 'port'],
    properties: { host: str, port, db: { type: 'integer', minimum: 0, maximum: 1024 }, usernameFile: str, passwordFile: str, tls, authCommand: str, aclCommand: str, passwordHash },
  },
  http: {
    required: ['url', 'method'],
    properties: { url: { type: 'string', pattern: '^https?://' }, method: { enum: ['GET', 'POST'] }, bodyFormat: { enum: ['json', 'form'] }, headers: stringMap, body: stringMap, aclUrl: { type: 'string', pattern: '^https?://' }, bearerTokenFile: str, tls },
  },
  jwt: {
    required: ['from'],
    properties: {
      from: { enum: ['password', 'username'] }, secretFile: str, secretBase64: { type: 'boolean' }, publicKeyFile: str, jwksFile: str, jwksUrl: { type: 'string', pattern: '^https?://' },
      jwksRefreshSeconds: { type: 'number', minimum: 1 }, algorithms: { type: 'array', items: str }, issuer: str, audience: str, verifyClaims: stringMap, aclClaim: str, disconnectOnExpiry: { type: 'boolean' },
    },
    oneOf: [{ required: ['secretFile'] }, { required: ['publicKeyFile'] }, { required: ['jwksFile'] }, { required: ['jwksUrl'] }],
  },
  x509: { required: ['identityFrom'], properties: { identityFrom: { enum: ['cn', 'dns', 'email', 'uri', 'subject'] }, superusers: { type: 'array', items: str } } },
};
byType.mysql = byType.postgres!;

const ajv = new Ajv({ allErrors: true, strict: false });
const validators = Object.fromEntries(
  Object.entries(byType).map(([type, s]) => {
    const schema = s as { properties: Record<string, unknown> };
    return [type, ajv.compile({ ...schema, type: 'object', additionalProperties: false, properties: { type: { const: type }, ...common, ...schema.properties } })];
  }),
);

function describe(prefix: string, e: ErrorObject): string {
  const path = prefix + e.instancePath.replace(/\//g, '.');
  if (e.keyword === 'additionalProperties') return `${path}: unknown field "${String((e.params as { additionalProperty: string }).additionalProperty)}"`;
  if (e.keyword === 'required') return `${path}.${String((e.params as { missingProperty: string }).missingProperty)}: is required`;
  if (e.keyword === 'oneOf') return `${path}: needs exactly one of secretFile, publicKeyFile, jwksFile, jwksUrl`;
  if (e.keyword === 'enum') return `${path}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  return `${path}: ${e.message ?? 'is invalid'}`;
}

const inAccessLogs = 'URLs and query strings are written to the access logs of HTTP servers and proxies; send it in a POST body';

/**
 * The password never goes into a URL: not in `url`/`aclUrl` (any method), and not in the body
 * fields that GET sends as query parameters — including the default body, which carries it.
 */
function httpProblems(prefix: string, raw: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const field of ['url', 'aclUrl']) {
    const t = raw[field];
    if (typeof t === 'string' && templateUses(t, 'password')) out.push(`${prefix}.${field}: \${password} (or %P) is not allowed in a URL: ${inAccessLogs}`);
  }
  if (raw.method !== 'GET') return out;
  const body = raw.body;
  if (body === undefined) {
    out.push(`${prefix}.body: is required with method GET, which sends it as query parameters: the default body carries \${password}; list the fields without it, or use POST`);
  } else if (typeof body === 'object' && body !== null) {
    for (const [k, t] of Object.entries(body)) {
      if (typeof t === 'string' && templateUses(t, 'password')) out.push(`${prefix}.body.${k}: \${password} (or %P) is not allowed with method GET, which sends the body as query parameters: ${inAccessLogs}`);
    }
  }
  return out;
}

/** Every problem in `sources`, each naming its path; empty = valid. */
export function authSourceProblems(sources: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const [name, raw] of Object.entries(sources)) {
    const prefix = `sources.${name}`;
    const type = (raw as { type?: unknown } | null)?.type;
    const validate = typeof type === 'string' ? validators[type] : undefined;
    if (!validate) {
      problems.push(`${prefix}.type: must be one of ${Object.keys(byType).map((t) => JSON.stringify(t)).join(', ')}`);
      continue;
    }
    if (!validate(raw)) {
      // oneOf/if-then produce follow-up noise ("must match schema"); keep the messages people can act on.
      for (const e of validate.errors ?? []) if (e.keyword !== 'if' && !(e.keyword === 'required' && e.schemaPath.startsWith('#/oneOf'))) problems.push(describe(prefix, e));
    }
    if (type === 'http') problems.push(...httpProblems(prefix, raw as Record<string, unknown>));
  }
  return [...new Set(problems)];
}

/**
 * Which chains a source can sit in, from its config alone (what each backend provides): jwt and
 * x509 only authenticate; http authorizes only with an aclUrl; builtin, SQL and Redis do both.
 */
export function sourceRoles(raw: unknown): { authenticate: boolean; authorize: boolean } {
  const o = (raw ?? {}) as { type?: unknown; aclUrl?: unknown };
  if (o.type === 'jwt' || o.type === 'x509') return { authenticate: true, authorize: false };
  if (o.type === 'http') return { authenticate: true, authorize: typeof o.aclUrl === 'string' && o.aclUrl.length > 0 };
  return { authenticate: true, authorize: true };
}

/** A source named in a chain it cannot serve: the broker would refuse to start (auth/chain.ts). */
export function chainRoleProblems(config: { sources: Record<string, unknown>; authentication: { chain: string[] }; authorization: { chain: string[] } }): string[] {
  const problems: string[] = [];
  for (const [chain, role] of [['authentication', 'authenticate'], ['authorization', 'authorize']] as const) {
    for (const name of config[chain].chain) {
      const raw = config.sources[name];
      if (raw !== undefined && !sourceRoles(raw)[role]) {
        const type = String((raw as { type?: unknown }).type);
        problems.push(`${chain}.chain: source "${name}" (${type}) cannot ${role}${type === 'http' ? ' without an aclUrl' : ''}; remove it from the ${chain} chain`);
      }
    }
  }
  return problems;
}
