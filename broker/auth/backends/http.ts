// Owns the `http` source: a templated request to the tenant's auth service (EMQX HTTP authn/authz).
// Values are rendered per field (form/JSON body, query string, percent-encoded URL parts), never
// spliced into a JSON text. Response: 204 = allow; 200 + `{"result":"allow|deny|ignore",
// "is_superuser", "acl", "expire_at"}`; 401/403 = deny (EMQX 4 style); other 4xx = ignore;
// 5xx, transport errors and unparsable bodies are backend failures (→ onBackendFailure). The
// password travels only in a POST body, never in a URL or a GET query string (those end up in
// access logs): config validation refuses it there (source-schema.ts), and so do the compiled templates.
import http from 'node:http';
import https from 'node:https';
import type { HttpSourceConfig } from '../config.ts';
import type { AuthorizationRequest } from '../hook.ts';
import { parseAclClaim, type Rule } from '../acl.ts';
import { compileUrl, compileValue, templateUses, type PlaceholderName, type PlaceholderValues } from '../placeholders.ts';
import { BackendError, isTruthySuperuser, valuesOfAttempt, valuesOfClient, type AuthSource, type SourceContext, type SourceAuthnResult, type SourceAuthzResult } from '../source.ts';
import { watchTextFile, type WatchedFile } from '../../mounted-files.ts';
import { tlsOptions } from './sql.ts';

export const defaultHttpBody: Record<string, string> = {
  username: '${username}',
  password: '${password}',
  clientid: '${clientid}',
  peerhost: '${peerhost}',
};

const maxResponseBytes = 64 * 1024;
const authnVars = new Set<PlaceholderName>(['username', 'clientid', 'peerhost', 'cert_common_name', 'cert_subject', 'password']);
const authzVars = new Set<PlaceholderName>(['username', 'clientid', 'peerhost', 'cert_common_name', 'cert_subject']);
/** What may go into a URL or a GET query string: everything but the password. */
const urlVars = authzVars;

interface HttpAnswer {
  status: number;
  body: string;
}

type Rendered = (v: PlaceholderValues) => Record<string, string>;

function compileFields(fields: Record<string, string>, allowed: Set<PlaceholderName>): Rendered {
  const compiled = Object.entries(fields).map(([k, t]) => [k, compileValue(t, allowed)] as const);
  return (v) => Object.fromEntries(compiled.map(([k, f]) => [k, f(v)]));
}

/** How requests to the auth service are made: the method, body format, headers and agent of one source. */
interface HttpClient {
  name: string;
  method: HttpSourceConfig['method'];
  bodyFormat: HttpSourceConfig['bodyFormat'];
  headers: Rendered;
  bearer: WatchedFile | undefined;
  agent: http.Agent;
}

export function createHttpSource(c: HttpSourceConfig, ctx: SourceContext): AuthSource {
  const tls = tlsOptions(c.tls);
  const agentOptions = { keepAlive: true, maxSockets: 64, ...(tls ?? {}) };
  const client: HttpClient = {
    name: ctx.name,
    method: c.method,
    bodyFormat: c.bodyFormat,
    headers: compileFields(c.headers ?? {}, authzVars),
    bearer: c.bearerTokenFile ? watchTextFile(c.bearerTokenFile, () => {}, { intervalMs: ctx.watchIntervalMs }) : undefined,
    agent: c.url.startsWith('https:') ? new https.Agent(agentOptions) : new http.Agent(agentOptions),
  };
  const bodyFields = c.body ?? defaultHttpBody;
  const authnUrl = compileUrl(c.url, urlVars);
  const authnBody = compileFields(bodyFields, c.method === 'GET' ? urlVars : authnVars);
  const aclUrl = c.aclUrl ? compileUrl(c.aclUrl, urlVars) : undefined;
  const aclBody = compileFields(Object.fromEntries(Object.entries(bodyFields).filter(([, t]) => !templateUses(t, 'password'))), authzVars);
  return {
    name: ctx.name,
    type: 'http',
    async authenticate(attempt, signal): Promise<SourceAuthnResult> {
      const v = valuesOfAttempt(attempt);
      return authnAnswer(await send(client, { url: authnUrl(v), fields: authnBody(v), values: v }, signal), ctx);
    },
    ...(aclUrl
      ? {
          async authorize(who, request: AuthorizationRequest, signal) {
            const v = valuesOfClient(who);
            const fields = { ...aclBody(v), topic: request.topic, action: request.action, qos: String(request.qos), retain: String(request.retain) };
            return authzAnswer(await send(client, { url: aclUrl(v), fields, values: v }, signal), ctx.name);
          },
        }
      : {}),
    async close() {
      client.bearer?.stop();
      client.agent.destroy();
    },
  } satisfies AuthSource;
}

/** One request: where, the fields (query or body), and the values headers are rendered with. */
interface HttpCall {
  url: string;
  fields: Record<string, string>;
  values: PlaceholderValues;
}

function send(client: HttpClient, call: HttpCall, signal: AbortSignal): Promise<HttpAnswer> {
  const target = new URL(call.url);
  let payload: string | undefined;
  const h: Record<string, string> = { accept: 'application/json', ...client.headers(call.values) };
  if (client.bearer) h.authorization = `Bearer ${client.bearer.current()}`;
  if (client.method === 'GET') {
    for (const [k, val] of Object.entries(call.fields)) target.searchParams.set(k, val);
  } else if (client.bodyFormat === 'form') {
    payload = new URLSearchParams(call.fields).toString();
    h['content-type'] = 'application/x-www-form-urlencoded';
  } else {
    payload = JSON.stringify(call.fields);
    h['content-type'] = 'application/json';
  }
  const lib = target.protocol === 'https:' ? https : http;
  return new Promise<HttpAnswer>((resolve, reject) => {
    const req = lib.request(target, { method: client.method, headers: h, agent: client.agent, signal }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxResponseBytes) {
          req.destroy(new BackendError(client.name, `response larger than ${maxResponseBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', (err) => reject(new BackendError(client.name, `request to ${target.origin} failed: ${err.message}`, { cause: err })));
    req.end(payload);
  });
}

function parseJson(name: string, a: HttpAnswer): Record<string, unknown> {
  try {
    const o = JSON.parse(a.body) as unknown;
    if (typeof o === 'object' && o !== null && !Array.isArray(o)) return o as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new BackendError(name, `HTTP ${a.status} with a body that is not a JSON object`);
}

/** The auth service's answer to an authentication request, as a source result. */
function authnAnswer(a: HttpAnswer, ctx: SourceContext): SourceAuthnResult {
  if (a.status === 204) return { decision: 'allow', superuser: false };
  if (a.status === 401 || a.status === 403) return { decision: 'deny', reason: 'not-authorized' };
  if (a.status >= 500 || a.status < 200) throw new BackendError(ctx.name, `HTTP ${a.status}`);
  if (a.status !== 200) return { decision: 'ignore' };
  const o = parseJson(ctx.name, a);
  if (o.result === 'deny') return { decision: 'deny', reason: 'not-authorized' };
  if (o.result !== 'allow') return { decision: 'ignore' };
  let acl: Rule[] | undefined;
  if (o.acl !== undefined) {
    try {
      acl = parseAclClaim(o.acl);
    } catch (err) {
      ctx.logger.warn({ err: (err as Error).message }, 'auth service returned an invalid acl: denied');
      return { decision: 'deny', reason: 'bad-credentials' };
    }
  }
  const expireAt = typeof o.expire_at === 'number' ? new Date(o.expire_at * 1000) : undefined;
  return { decision: 'allow', superuser: isTruthySuperuser(o.is_superuser), ...(acl ? { acl } : {}), ...(expireAt ? { expiresAt: expireAt } : {}) };
}

/** The auth service's answer to an authorization request. */
function authzAnswer(a: HttpAnswer, name: string): SourceAuthzResult {
  if (a.status === 204) return 'allow';
  if (a.status === 401 || a.status === 403) return 'deny';
  if (a.status >= 500 || a.status < 200) throw new BackendError(name, `HTTP ${a.status}`);
  if (a.status !== 200) return 'ignore';
  const result = parseJson(name, a).result;
  return result === 'allow' ? 'allow' : result === 'deny' ? 'deny' : 'ignore';
}
