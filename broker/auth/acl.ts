// Owns ACL rules: parsing every shape a source can hand us (EMQX 5 rows/JSON, EMQX 4 `mqtt_acl`
// rows, Redis hashes, JWT claims in the list and the old pub/sub map format) into one rule type,
// and evaluating a list of rules for one request: first matching rule wins, else `ignore` (no rule speaks to the request). Pure.
import { BlockList, isIP } from 'node:net';
import type { AclAction, AclRule, AuthorizationRequest } from './hook.ts';
import { renderTopicTemplate, type PlaceholderValues } from './placeholders.ts';
import { parseShared, ruleCovers } from '../router/topics.ts';
import type { SharedFilter } from '../router/topics.ts';

/** Who a rule applies to (EMQX 4 rows, builtin file): all present fields must match. */
export interface RuleSubject {
  username?: string;
  clientid?: string;
  /** IP address or CIDR. */
  ipaddr?: string;
}

export interface Rule extends AclRule {
  who?: RuleSubject;
}

export type AclVerdict = 'allow' | 'deny' | 'ignore';

export class AclRuleError extends Error {
  constructor(problem: string) {
    super(`invalid ACL rule: ${problem}`);
    this.name = 'AclRuleError';
  }
}

function parseAction(raw: unknown): AclAction | 'all' {
  switch (String(raw).toLowerCase()) {
    case 'publish':
    case 'pub':
      return 'publish';
    case 'subscribe':
    case 'sub':
      return 'subscribe';
    case 'all':
    case 'pubsub':
      return 'all';
    default:
      throw new AclRuleError(`action ${JSON.stringify(raw)} is not publish|subscribe|all`);
  }
}

function parsePermission(raw: unknown): 'allow' | 'deny' {
  const p = String(raw).toLowerCase();
  if (p === 'allow' || p === 'deny') return p;
  throw new AclRuleError(`permission ${JSON.stringify(raw)} is not allow|deny`);
}

/** qos: int, list, or "0,1"; null/undefined/"" = any. */
function parseQos(raw: unknown): number[] | undefined {
  if (raw === null || raw === undefined || raw === '') return undefined;
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : [raw];
  const out = list.map((q) => Number(typeof q === 'string' ? q.trim() : q));
  if (out.some((q) => !Number.isInteger(q) || q < 0 || q > 2)) throw new AclRuleError(`qos ${JSON.stringify(raw)} is not 0..2`);
  return out;
}

/** retain: 0|1|true|false|"all"; null/undefined/"all" = any. */
function parseRetain(raw: unknown): boolean | undefined {
  if (raw === null || raw === undefined || raw === '' || raw === 'all') return undefined;
  if (raw === true || raw === 1 || raw === '1' || raw === 'true') return true;
  if (raw === false || raw === 0 || raw === '0' || raw === 'false') return false;
  throw new AclRuleError(`retain ${JSON.stringify(raw)} is not true|false|all`);
}

function subjectOf(o: Record<string, unknown>): RuleSubject | undefined {
  const who: RuleSubject = {};
  const str = (k: string): string | undefined => (typeof o[k] === 'string' && o[k] !== '' ? o[k] : undefined);
  const username = str('username');
  const clientid = str('clientid');
  const ipaddr = str('ipaddr') ?? str('ipaddress');
  if (username !== undefined && username !== '$all') who.username = username;
  if (clientid !== undefined) who.clientid = clientid;
  if (ipaddr !== undefined) who.ipaddr = ipaddr;
  return Object.keys(who).length > 0 ? who : undefined;
}

/**
 * One rule object/row in any supported shape: EMQX 5 (`permission, action, topic|topics, qos,
 * retain`) or EMQX 4 `mqtt_acl` (`allow 0|1, access 1 sub|2 pub|3 both, topic, ipaddr, username,
 * clientid`, username `$all` = everyone). `withSubject`: honour username/clientid/ipaddr columns.
 */
export function parseRule(raw: unknown, withSubject = true): Rule[] {
  if (typeof raw !== 'object' || raw === null) throw new AclRuleError('not an object');
  const o = raw as Record<string, unknown>;
  let permission: 'allow' | 'deny';
  let action: AclAction | 'all';
  if (o.permission !== undefined && o.permission !== null) {
    permission = parsePermission(o.permission);
    action = parseAction(o.action);
  } else if (o.allow !== undefined && o.access !== undefined) {
    permission = Number(o.allow) === 1 ? 'allow' : Number(o.allow) === 0 ? 'deny' : parsePermission(o.allow);
    const access = Number(o.access);
    if (access === 1) action = 'subscribe';
    else if (access === 2) action = 'publish';
    else if (access === 3) action = 'all';
    else throw new AclRuleError(`access ${JSON.stringify(o.access)} is not 1|2|3`);
  } else {
    throw new AclRuleError('needs permission+action (EMQX 5) or allow+access (EMQX 4)');
  }
  const topics = Array.isArray(o.topics) ? o.topics : [o.topic];
  if (topics.length === 0 || topics.some((t) => typeof t !== 'string' || t === '')) throw new AclRuleError('topic must be a non-empty string');
  const qos = parseQos(o.qos);
  const retain = parseRetain(o.retain);
  const who = withSubject ? subjectOf(o) : undefined;
  return (topics as string[]).map((topic) => ({
    permission,
    action,
    topic,
    ...(qos ? { qos } : {}),
    ...(retain !== undefined ? { retain } : {}),
    ...(who ? { who } : {}),
  }));
}

/**
 * Redis hash (EMQX `HGETALL mqtt_acl:${username}`): field = topic filter, value = action name,
 * access bitmask 1|2|3, or JSON `{"action", "qos", "retain"}`. Redis rules are allow-only.
 */
export function parseRedisAcl(hash: Record<string, string>): Rule[] {
  return Object.entries(hash).map(([topic, value]) => {
    if (value.trim().startsWith('{')) {
      const j = JSON.parse(value) as Record<string, unknown>;
      return parseRule({ ...j, permission: 'allow', topic }, false)[0]!;
    }
    const n = Number(value);
    const action = n === 1 ? 'subscribe' : n === 2 ? 'publish' : n === 3 ? 'all' : parseAction(value);
    return { permission: 'allow', action, topic };
  });
}

/**
 * The JWT / HTTP `acl` value: a list of rule objects (EMQX 5.5+; no match → next source), or the
 * old `{"pub":[..],"sub":[..],"all":[..]}` allow-map, which ends in an implicit deny (EMQX).
 */
export function parseAclClaim(raw: unknown): Rule[] {
  if (Array.isArray(raw)) return raw.flatMap((r) => parseRule(r, false));
  if (typeof raw === 'object' && raw !== null) {
    const o = raw as Record<string, unknown>;
    const rules: Rule[] = [];
    for (const [key, action] of [['pub', 'publish'], ['sub', 'subscribe'], ['all', 'all']] as const) {
      const list = o[key];
      if (list === undefined) continue;
      if (!Array.isArray(list) || list.some((t) => typeof t !== 'string')) throw new AclRuleError(`"${key}" must be a list of topics`);
      for (const topic of list as string[]) rules.push({ permission: 'allow', action, topic });
    }
    rules.push({ permission: 'deny', action: 'all', topic: '#' }, { permission: 'deny', action: 'all', topic: '$#' });
    return rules;
  }
  throw new AclRuleError('acl must be a list of rules or a {pub, sub, all} map');
}

function ipMatches(spec: string, ip: string): boolean {
  const plain = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  const family = isIP(plain) === 6 ? 'ipv6' : 'ipv4';
  if (!spec.includes('/')) return spec === plain;
  const [net, bits] = spec.split('/');
  const list = new BlockList();
  try {
    list.addSubnet(net!, Number(bits), isIP(net!) === 6 ? 'ipv6' : 'ipv4');
    return list.check(plain, family);
  } catch {
    return false;
  }
}

function subjectMatches(who: RuleSubject | undefined, v: PlaceholderValues): boolean {
  if (!who) return true;
  if (who.username !== undefined && who.username !== v.username) return false;
  if (who.clientid !== undefined && who.clientid !== v.clientid) return false;
  if (who.ipaddr !== undefined && !ipMatches(who.ipaddr, v.peerhost)) return false;
  return true;
}

/** An ACL rule `$share/+/<filter>` speaks about shared subscriptions of any group: a rule syntax, not a ShareName. */
const ANY_GROUP = '$share/+/';

/** The shared-subscription parts of a rule topic; `group` undefined = any group. */
function sharedRule(rendered: string): { group: string | undefined; filter: string } | undefined {
  if (rendered.startsWith(ANY_GROUP) && rendered.length > ANY_GROUP.length) return { group: undefined, filter: rendered.slice(ANY_GROUP.length) };
  return sharedOf(rendered);
}

/** parseShared() of a well-formed `$share/...`; a malformed one is an ordinary topic here. */
function sharedOf(topic: string): SharedFilter | undefined {
  const shared = parseShared(topic);
  return shared instanceof Error ? undefined : shared;
}

function ruleTopicCovers(ruleTopic: string, requested: string, v: PlaceholderValues): boolean {
  // `eq <filter>`: literal comparison, no placeholders, no wildcard expansion (EMQX).
  if (ruleTopic.startsWith('eq ')) return ruleTopic.slice(3) === requested;
  // `$#` is our spelling of "every `$` topic" (EMQX's `all`), used by the old map format's deny.
  if (ruleTopic === '$#') return requested.startsWith('$');
  const rendered = renderTopicTemplate(ruleTopic, v);
  if (rendered === undefined) return false;
  const reqShare = sharedOf(requested);
  const ruleShare = sharedRule(rendered);
  if (ruleShare) {
    // A `$share/<group>/<filter>` rule speaks only about shared subscriptions.
    if (!reqShare) return false;
    if (ruleShare.group !== undefined && ruleShare.group !== reqShare.group) return false;
    return ruleCovers(ruleShare.filter, reqShare.filter);
  }
  return ruleCovers(rendered, reqShare ? reqShare.filter : requested);
}

export function ruleMatches(rule: Rule, request: AuthorizationRequest, v: PlaceholderValues): boolean {
  if (rule.action !== 'all' && rule.action !== request.action) return false;
  if (rule.qos && !rule.qos.includes(request.qos)) return false;
  if (rule.retain !== undefined && request.action === 'publish' && rule.retain !== request.retain) return false;
  if (!subjectMatches(rule.who, v)) return false;
  return ruleTopicCovers(rule.topic, request.topic, v);
}

/** First matching rule decides; none → ignore. */
export function evaluateAcl(rules: readonly Rule[], request: AuthorizationRequest, v: PlaceholderValues): AclVerdict {
  for (const rule of rules) {
    if (ruleMatches(rule, request, v)) return rule.permission;
  }
  return 'ignore';
}
