// Owns taking over the sessions of a replica that died: while its offline sessions have no live
// owner, nobody routes to them, and QoS 1/2 messages published for them would be lost until their
// clients reconnect. A live replica that sees a peer's heartbeat stop lists that peer's sessions
// (the `owned:<replica>` set the session store keeps) and adopts each one with a compare-and-set on
// the owner: exactly one replica wins, with a new epoch that fences the dead one should it come
// back. An adopted session keeps its TTL (it is still offline); the adopter loads it and queues for
// it as for its own offline sessions. Online clients of the dead replica reconnect and claim as usual.
import { LinkError } from './link.ts';
import type { RedisLink } from './link.ts';
import { Script } from './script.ts';
import type { SessionStore } from './session-store.ts';

// KEYS: base, epoch counter, adopter's owned set. ARGV: key prefix, adopter, expected owner, client id.
// Returns the new epoch, or 0 when the owner is no longer the expected one (another replica adopted,
// the client reconnected somewhere, the session ended).
const ADOPT = new Script(`
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[3] then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'epoch', epoch)
redis.call('SREM', ARGV[1] .. 'owned:' .. ARGV[3], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[4])
return epoch
`);

export class Adoption {
  private readonly link: RedisLink;
  private readonly sessions: SessionStore;

  constructor(link: RedisLink, sessions: SessionStore) {
    this.link = link;
    this.sessions = sessions;
  }

  /** Client ids of live sessions owned by `replica` (entries of expired sessions are dropped). */
  async ownedBy(replica: string): Promise<string[]> {
    const key = this.sessions.ownedKey(replica);
    const out: string[] = [];
    let cursor = '0';
    try {
      do {
        const [next, ids] = await this.link.command.sscan(key, cursor, 'COUNT', 500);
        cursor = next;
        for (const id of ids) {
          if (await this.link.command.exists(this.sessions.keys(id)[0]) === 1) out.push(id);
          else await this.link.command.srem(key, id); // expired by TTL: nothing to adopt
        }
      } while (cursor !== '0');
    } catch (err) {
      throw this.link.failed(err, 'owned sessions');
    }
    return out;
  }

  /** Adopts `clientId` from `deadOwner`; the new epoch, or undefined when someone else has it now. */
  async adopt(clientId: string, deadOwner: string): Promise<number | undefined> {
    const keys = [this.sessions.keys(clientId)[0], this.sessions.epochCounterKey, this.sessions.ownedKey(this.sessions.replicaId)];
    let epoch: unknown;
    try {
      epoch = await ADOPT.run(this.link.command, keys, [this.link.keyPrefix, this.sessions.replicaId, deadOwner, clientId]);
    } catch (err) {
      throw err instanceof LinkError ? err : this.link.failed(err, 'adopt session');
    }
    return epoch === 0 ? undefined : Number(epoch);
  }
}
