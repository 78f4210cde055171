// The per-connection decision cache: LRU within maxSize, TTL, per-connection, cleared on reload.
import { describe, expect, it } from 'vitest';
import { DecisionCache } from '../../../broker/auth/decision-cache.ts';
import type { AuthenticatedClient, AuthorizationRequest } from '../../../broker/auth/hook.ts';

const client = (id: string): AuthenticatedClient => ({
  attempt: { clientId: id, username: 'u', peerHost: '127.0.0.1', listener: 'l', protocolVersion: 5, certificate: undefined },
  superuser: false,
  acl: undefined,
});
const req = (topic: string, qos: 0 | 1 | 2 = 0): AuthorizationRequest => ({ action: 'publish', topic, qos, retain: false });

describe('DecisionCache', () => {
  it('remembers per connection and per request (topic, qos, retain, action)', () => {
    const c = new DecisionCache({ maxSize: 32, ttlMs: 60_000, now: () => 0 });
    const a = client('a');
    const b = client('b');
    c.set(a, req('t'), true);
    expect(c.get(a, req('t'))).toBe(true);
    expect(c.get(a, req('t', 1))).toBeUndefined();
    expect(c.get(a, { ...req('t'), retain: true })).toBeUndefined();
    expect(c.get(a, { ...req('t'), action: 'subscribe' })).toBeUndefined();
    expect(c.get(b, req('t'))).toBeUndefined();
  });
  it('expires after ttl', () => {
    let now = 1000;
    const c = new DecisionCache({ maxSize: 32, ttlMs: 60_000, now: () => now });
    const a = client('a');
    c.set(a, req('t'), false);
    now += 59_999;
    expect(c.get(a, req('t'))).toBe(false);
    now += 1;
    expect(c.get(a, req('t'))).toBeUndefined();
  });
  it('evicts the oldest entry beyond maxSize; re-setting an entry renews it', () => {
    const c = new DecisionCache({ maxSize: 2, ttlMs: 60_000, now: () => 0 });
    const a = client('a');
    c.set(a, req('1'), true);
    c.set(a, req('2'), true);
    c.set(a, req('1'), false);
    c.set(a, req('3'), true);
    expect(c.size(a)).toBe(2);
    expect(c.get(a, req('2'))).toBeUndefined();
    expect(c.get(a, req('1'))).toBe(false);
    expect(c.get(a, req('3'))).toBe(true);
  });
  it('clear() drops every connection', () => {
    const c = new DecisionCache({ maxSize: 32, ttlMs: 60_000, now: () => 0 });
    const a = client('a');
    c.set(a, req('t'), true);
    c.clear();
    expect(c.get(a, req('t'))).toBeUndefined();
    expect(c.size(a)).toBe(0);
    c.set(a, req('t'), false);
    expect(c.get(a, req('t'))).toBe(false);
  });
  it('a decision started before a clear() is not stored after it (it may rest on the old data)', () => {
    const c = new DecisionCache({ maxSize: 32, ttlMs: 60_000, now: () => 0 });
    const a = client('a');
    const started = c.generation;
    c.clear(); // a source reloaded while the decision was in flight
    c.set(a, req('t'), true, started);
    expect(c.get(a, req('t'))).toBeUndefined();
    c.set(a, req('t'), false, c.generation);
    expect(c.get(a, req('t'))).toBe(false);
  });
});
