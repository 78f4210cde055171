// Owns the `builtin` source: users and ACL rules from one YAML/JSON file (a mounted Secret),
// re-read when it changes. File shape:
//   users: [{ username, password_hash, salt?, is_superuser? }]
//   acl:   [{ permission, action, topic|topics, qos?, retain?, username?, clientid?, ipaddr? }]
// A rule without username/clientid/ipaddr applies to every client. A file that fails to parse on
// reload is logged and the previous content stays in force (a typo must not open or close the door).
import { YAMLParseError, parse as parseYaml } from 'yaml';
import type { BuiltinSourceConfig } from '../config.ts';
import { evaluateAcl, parseRule, type Rule } from '../acl.ts';
import { checkPasswordHashConfig, defaultPasswordHash } from '../password.ts';
import { checkUserRecord, valuesOfClient, type AuthSource, type SourceContext } from '../source.ts';
import { watchTextFile } from '../../mounted-files.ts';

interface BuiltinData {
  users: Map<string, Record<string, unknown>>;
  rules: Rule[];
}

export function parseBuiltinData(text: string, file: string): BuiltinData {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    // Error code and position only: the parser's message quotes the offending line, and the file is
    // a Secret (a mistyped users file, or a secretRef pointed at a key) — no cause kept either.
    const at = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
    // eslint-disable-next-line preserve-caught-error -- the cause would quote the Secret's content
    throw new Error(`${file}: not valid YAML/JSON (${err instanceof YAMLParseError ? err.code : 'parse error'})${at}`);
  }
  const o = (raw ?? {}) as { users?: unknown; acl?: unknown };
  if (typeof o !== 'object') throw new Error(`${file}: must be a map with "users" and "acl"`);
  const users = new Map<string, Record<string, unknown>>();
  if (o.users !== undefined && !Array.isArray(o.users)) throw new Error(`${file}: users must be a list`);
  ((o.users ?? []) as unknown[]).forEach((u, i) => {
    const rec = u as Record<string, unknown>;
    if (typeof rec?.username !== 'string' || rec.username === '') throw new Error(`${file}: users[${i}].username is required`);
    if (typeof rec.password_hash !== 'string') throw new Error(`${file}: users[${i}].password_hash is required`);
    if (users.has(rec.username)) throw new Error(`${file}: users[${i}]: duplicate username "${rec.username}"`);
    users.set(rec.username, rec);
  });
  if (o.acl !== undefined && !Array.isArray(o.acl)) throw new Error(`${file}: acl must be a list`);
  const rules = ((o.acl ?? []) as unknown[]).flatMap((r, i) => {
    try {
      return parseRule(r);
    } catch (err) {
      throw new Error(`${file}: acl[${i}]: ${(err as Error).message}`, { cause: err });
    }
  });
  return { users, rules };
}

export function createBuiltinSource(c: BuiltinSourceConfig, ctx: SourceContext): AuthSource {
  const hash = c.passwordHash ?? defaultPasswordHash;
  checkPasswordHashConfig(hash);
  let data: BuiltinData = { users: new Map(), rules: [] };
  const watcher = watchTextFile(
    c.dataFile,
    (text) => {
      try {
        data = parseBuiltinData(text, c.dataFile);
        ctx.logger.info({ users: data.users.size, rules: data.rules.length }, 'builtin auth data reloaded');
        ctx.dataChanged();
      } catch (err) {
        ctx.logger.error({ err: (err as Error).message }, 'builtin auth data not reloaded: keeping the previous content');
      }
    },
    { intervalMs: ctx.watchIntervalMs, trim: false },
  );
  try {
    data = parseBuiltinData(watcher.current(), c.dataFile);
  } catch (err) {
    watcher.stop();
    throw err;
  }
  return {
    name: ctx.name,
    type: 'builtin',
    async authenticate(attempt) {
      if (attempt.username === undefined) return { decision: 'ignore' };
      const user = data.users.get(attempt.username);
      if (!user) return { decision: 'ignore' };
      return checkUserRecord(user, attempt.password, hash);
    },
    async authorize(client, request) {
      return evaluateAcl(data.rules, request, valuesOfClient(client));
    },
    async close() {
      watcher.stop();
    },
  };
}
