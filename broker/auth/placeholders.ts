// Owns placeholder templates: `${username}`-style (EMQX 5) and `%u`-style (EMQX 4) variables in
// SQL queries, Redis commands, HTTP requests and ACL topics. Client-controlled values are NEVER
// spliced into query text: SQL gets bound parameters ($1… for PostgreSQL, ? for MySQL), Redis and
// HTTP get each rendered template as one argument/value. ACL topics refuse values carrying topic
// wildcards or level separators (mosquitto CVE-2017-7650: a client id `#` must not widen a rule).

/** Values a template may reference; `undefined` = the client did not supply it. */
export interface PlaceholderValues {
  username: string | undefined;
  clientid: string;
  peerhost: string;
  cert_common_name: string | undefined;
  cert_subject: string | undefined;
  /** Only for authentication templates (HTTP body, EMQX 4 `%P`); never logged. */
  password?: string | undefined;
}

export type PlaceholderName = keyof PlaceholderValues;

type Segment = { text: string } | { variable: PlaceholderName };

const percentVars: Record<string, PlaceholderName> = {
  u: 'username',
  c: 'clientid',
  a: 'peerhost',
  P: 'password',
  C: 'cert_common_name',
  d: 'cert_subject',
};

const knownVars = new Set<string>(['username', 'clientid', 'peerhost', 'cert_common_name', 'cert_subject', 'password']);

export class TemplateError extends Error {
  constructor(template: string, problem: string) {
    super(`template "${template}": ${problem}`);
    this.name = 'TemplateError';
  }
}

/**
 * Splits a template into literal text and variables. Throws TemplateError for an unknown `${name}`
 * or for a variable outside `allowed`, so a typo fails at config load instead of matching nothing.
 */
export function parseTemplate(template: string, allowed: ReadonlySet<PlaceholderName> = knownVars as Set<PlaceholderName>): Segment[] {
  const out: Segment[] = [];
  let text = '';
  const pushVar = (name: string): void => {
    if (!knownVars.has(name)) throw new TemplateError(template, `unknown placeholder "${name}"`);
    if (!allowed.has(name as PlaceholderName)) throw new TemplateError(template, `placeholder "${name}" is not allowed here`);
    if (text !== '') out.push({ text });
    text = '';
    out.push({ variable: name as PlaceholderName });
  };
  for (let i = 0; i < template.length; i++) {
    const ch = template[i];
    if (ch === '$' && template[i + 1] === '{') {
      const end = template.indexOf('}', i + 2);
      if (end < 0) throw new TemplateError(template, 'unterminated "${"');
      const name = template.slice(i + 2, end);
      if (name === '$') text += '$'; // EMQX 5.4+ escape `${$}`
      else pushVar(name);
      i = end;
    } else if (ch === '%' && template[i + 1] !== undefined && template[i + 1]! in percentVars) {
      pushVar(percentVars[template[i + 1]!]!);
      i++;
    } else {
      text += ch;
    }
  }
  if (text !== '') out.push({ text });
  return out;
}

/** Whether a template references a variable (either syntax); an invalid template says no (it fails when compiled). */
export function templateUses(template: string, name: PlaceholderName): boolean {
  try {
    return parseTemplate(template).some((s) => 'variable' in s && s.variable === name);
  } catch {
    return false;
  }
}

export interface SqlStatement {
  text: string;
  values: (string | null)[];
}

/**
 * A SQL template compiled once: variables become bound parameters. EMQX 4 wrote `'%u'` inside
 * quotes; the quotes around a lone variable are dropped so the parameter is bound, not quoted text.
 */
export function compileSql(template: string, dialect: 'postgres' | 'mysql', allowed?: ReadonlySet<PlaceholderName>): (v: PlaceholderValues) => SqlStatement {
  const segments = parseTemplate(template, allowed);
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (!('variable' in seg)) continue;
    const before = segments[i - 1];
    const after = segments[i + 1];
    if (before && 'text' in before && before.text.endsWith("'") && after && 'text' in after && after.text.startsWith("'")) {
      before.text = before.text.slice(0, -1);
      after.text = after.text.slice(1);
    }
  }
  const names: PlaceholderName[] = [];
  let text = '';
  for (const seg of segments) {
    if ('text' in seg) text += seg.text;
    else {
      names.push(seg.variable);
      text += dialect === 'postgres' ? `$${names.length}` : '?';
    }
  }
  return (v) => ({ text, values: names.map((n) => v[n] ?? null) });
}

/** One value per template (a Redis argument, an HTTP form field): variables replaced, nothing split. */
export function compileValue(template: string, allowed?: ReadonlySet<PlaceholderName>): (v: PlaceholderValues) => string {
  const segments = parseTemplate(template, allowed);
  return (v) => segments.map((s) => ('text' in s ? s.text : (v[s.variable] ?? ''))).join('');
}

/** A URL template: variables are percent-encoded so a value cannot add path segments or parameters. */
export function compileUrl(template: string, allowed?: ReadonlySet<PlaceholderName>): (v: PlaceholderValues) => string {
  const segments = parseTemplate(template, allowed);
  return (v) => segments.map((s) => ('text' in s ? s.text : encodeURIComponent(v[s.variable] ?? ''))).join('');
}

/**
 * A Redis command template: split on whitespace into arguments FIRST, then each argument rendered,
 * so `HGETALL mqtt_acl:${username}` with username `a b` stays two arguments.
 */
export function compileRedisCommand(template: string, allowed?: ReadonlySet<PlaceholderName>): { command: string; args: (v: PlaceholderValues) => string[] } {
  const words = template.trim().split(/\s+/);
  const command = words[0];
  if (command === undefined || command === '') throw new TemplateError(template, 'empty command');
  const args = words.slice(1).map((w) => compileValue(w, allowed));
  return { command: command.toUpperCase(), args: (v) => args.map((a) => a(v)) };
}

/** Variables allowed in ACL rule topics (EMQX 5 `emqx_authz_rule` plus EMQX 4 `%u %c`). */
export const topicVars: ReadonlySet<PlaceholderName> = new Set<PlaceholderName>(['username', 'clientid', 'cert_common_name']);

const topicUnsafe = /[+#/]/;

/**
 * Renders an ACL topic template. Returns undefined (= the rule does not match) when a referenced
 * value is missing or contains `+`, `#` or `/` (CVE-2017-7650), or when the template is invalid:
 * a bad rule from a database row must fail closed, not throw.
 */
export function renderTopicTemplate(topic: string, v: PlaceholderValues): string | undefined {
  if (!topic.includes('${') && !topic.includes('%')) return topic;
  let segments: Segment[];
  try {
    segments = parseTemplate(topic, topicVars);
  } catch {
    return undefined;
  }
  let out = '';
  for (const s of segments) {
    if ('text' in s) {
      out += s.text;
      continue;
    }
    const value = v[s.variable];
    if (value === undefined || value === '' || topicUnsafe.test(value)) return undefined;
    out += value;
  }
  return out;
}
