// The one place for the rules of topic names and filters, pure: validation, matching a topic
// against a filter, whether an ACL rule's filter covers a requested topic or filter, and the one
// `$share` parser. (router/trie.ts is the index that applies the same matching rules to many
// filters at once; properties.test.ts checks it against topicMatches.)

export interface TopicLimits {
  maxTopicLength: number;
  maxTopicLevels: number;
}

/** Why a topic name cannot be published to, or undefined when it is fine. */
export function publishTopicProblem(topic: string, limits: TopicLimits): string | undefined {
  if (topic.length === 0) return 'empty topic name'; // [MQTT-4.7.3-1]
  if (Buffer.byteLength(topic) > limits.maxTopicLength) return 'topic name too long';
  let levels = 1;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0x2b || c === 0x23) return 'wildcard in topic name'; // [MQTT-3.3.2-2]
    if (c === 0) return 'U+0000 in topic name'; // [MQTT-1.5.4-2]
    if (c === 0x2f && ++levels > limits.maxTopicLevels) return 'too many topic levels';
  }
  return undefined;
}

/** Why a topic filter cannot be subscribed to, or undefined when it is fine. */
export function filterProblem(filter: string, limits: TopicLimits): string | undefined {
  if (filter.length === 0) return 'empty topic filter'; // [MQTT-4.7.3-1]
  if (Buffer.byteLength(filter) > limits.maxTopicLength) return 'topic filter too long';
  const levels = filter.split('/');
  if (levels.length > limits.maxTopicLevels) return 'too many topic levels';
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('\u0000')) return 'U+0000 in topic filter';
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '"#" must be a whole last level'; // [MQTT-4.7.1-2]
    if (level.includes('+') && level !== '+') return '"+" must be a whole level'; // [MQTT-4.7.1-3]
  }
  return undefined;
}

export interface SharedFilter {
  group: string;
  filter: string;
}

/**
 * `$share/{group}/{filter}` → parts; undefined when not shared; an Error when malformed
 * (`$share/x`, `$share//t`, `$share/g/`: docs/hostile-inputs.md #18), or when the ShareName holds
 * a wildcard (`$share/+/t`), which the spec forbids. [MQTT-4.8.2-1, 4.8.2-2]
 */
export function parseShared(filter: string): SharedFilter | Error | undefined {
  if (!filter.startsWith('$share/')) return undefined;
  const rest = filter.slice(7);
  const slash = rest.indexOf('/');
  if (slash <= 0) return new Error('shared subscription needs $share/{group}/{filter}');
  const group = rest.slice(0, slash);
  const inner = rest.slice(slash + 1);
  if (group.includes('+') || group.includes('#')) return new Error('share name must not contain wildcards');
  if (inner.length === 0) return new Error('shared subscription has an empty filter');
  return { group, filter: inner };
}

/** Whether `topic` matches `filter`; `$`-topics are not matched by a leading wildcard. [MQTT-4.7.2-1] */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === 0x24 && (filter.charCodeAt(0) === 0x2b || filter.charCodeAt(0) === 0x23)) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

// ---- ACL coverage ---------------------------------------------------------------------------------
// A SUBSCRIBE filter is covered only if EVERY topic it can match is covered by the rule (a rule
// `a/+` does not cover a subscription to `a/#`), so a wildcard subscription cannot reach further
// than its rule. `$`-topics are not matched by a leading wildcard [MQTT-4.7.2-1].

/**
 * true when `rule` (a topic filter, wildcards allowed) covers `requested`. For publish, `requested`
 * is a topic name; for subscribe it is a filter and its wildcards must be covered by the rule's.
 */
export function ruleCovers(rule: string, requested: string): boolean {
  const r = rule.split('/');
  const q = requested.split('/');
  for (let i = 0; i < r.length; i++) {
    const rl = r[i]!;
    const ql = q[i];
    if (rl === '#') {
      if (i === 0 && requested.startsWith('$')) return false;
      return true; // `#` also covers the parent level (`a/#` covers `a`) [MQTT-4.7.1-2]
    }
    if (ql === undefined) return false;
    if (ql === '#') return false; // only a rule `#` covers a requested multi-level wildcard
    if (rl === '+') {
      if (i === 0 && ql.startsWith('$')) return false;
      continue; // covers any single level, including a requested `+`
    }
    if (ql === '+' || rl !== ql) return false;
  }
  return r.length === q.length;
}
