// Owns the topic test an ACL rule makes: does a rule's filter cover a PUBLISH topic or a SUBSCRIBE
// filter? Pure. A SUBSCRIBE filter is covered only if EVERY topic it can match is covered by the
// rule (a rule `a/+` does not cover a subscription to `a/#`), so a wildcard subscription cannot
// reach further than its rule. `$`-topics are not matched by a leading wildcard [MQTT-4.7.2-1].

export interface SharedSubscription {
  group: string;
  filter: string;
}

/** `$share/<group>/<filter>` → its parts; anything else → undefined. */
export function parseSharedSubscription(filter: string): SharedSubscription | undefined {
  if (!filter.startsWith('$share/')) return undefined;
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1) return undefined;
  return { group: rest.slice(0, slash), filter: rest.slice(slash + 1) };
}

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
