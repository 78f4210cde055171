// A replica dies with offline sessions: a live replica finds them through the dead one's owned set
// and adopts them; exactly one adopter wins each session, the dead owner is fenced, expired and
// ended sessions drop out of the index, and a client that reconnected elsewhere is not adopted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Adoption } from '../../../broker/cluster/adoption.ts';
import { closeAll, envelopeOf, startReplica, testPrefix, worldRedis } from './replicas.ts';
import type { RedisAddress, Replica } from './replicas.ts';

let redis: RedisAddress;
const open: Replica[] = [];

beforeAll(() => {
  redis = worldRedis();
});
afterAll(async () => {
  await closeAll(open);
});

describe('adoption of a dead replica\'s sessions', () => {
  it('one live replica adopts each offline session; the dead owner is fenced', async () => {
    const prefix = testPrefix('adoption');
    const [dead, b, c] = await Promise.all(['broker-0', 'broker-1', 'broker-2'].map((id) => startReplica(id, redis, prefix)));
    open.push(dead!, b!, c!);
    const epochs = new Map<string, number>();
    for (const id of ['dev-1', 'dev-2', 'dev-3', 'dev-4']) {
      const claim = await dead!.sessions.claim(id, true);
      epochs.set(id, claim.epoch);
      await dead!.sessions.goOffline(id, claim.epoch, id === 'dev-4' ? 1 : 3600);
    }
    await dead!.sessions.delete('dev-3', epochs.get('dev-3'));
    await b!.sessions.claim('dev-2', false); // dev-2's client came back, to b
    await new Promise((r) => setTimeout(r, 2100)); // dev-4 expires

    const byB = new Adoption(b!.link, b!.sessions);
    const byC = new Adoption(c!.link, c!.sessions);
    expect((await byB.ownedBy('broker-0')).sort()).toEqual(['dev-1']);
    // b and c race for every candidate: each session goes to exactly one of them.
    const [wonB, wonC] = await Promise.all([byB.adopt('dev-1', 'broker-0'), byC.adopt('dev-1', 'broker-0')]);
    expect([wonB, wonC].filter((e) => e !== undefined)).toHaveLength(1);
    const winner = wonB !== undefined ? b! : c!;
    const s = (await winner.sessions.load('dev-1'))!;
    expect(s.owner).toBe(winner.id);
    await winner.sessions.enqueue('dev-1', s.epoch, envelopeOf(winner.bus, 't', 'for the offline client'), { maxMessages: 10, maxBytes: 10_000, overflow: 'drop-oldest' });
    await expect(dead!.sessions.enqueue('dev-1', epochs.get('dev-1')!, envelopeOf(dead!.bus, 't', 'late'), { maxMessages: 10, maxBytes: 10_000, overflow: 'drop-oldest' }))
      .rejects.toMatchObject({ code: 'FENCED' });
    expect(await byB.adopt('dev-2', 'broker-0')).toBeUndefined(); // reconnected to b: not the dead one's any more
    expect(await byB.ownedBy('broker-0')).toEqual([]);
    expect((await new Adoption(winner.link, winner.sessions).ownedBy(winner.id))).toContain('dev-1');
    // Adopted, still offline: its TTL keeps running.
    expect(await winner.link.command.ttl(winner.sessions.keys('dev-1')[0])).toBeGreaterThan(3000);
  });
});
