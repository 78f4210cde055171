// Owns the Lua of the session store (session-store.ts makes the calls, with the keys and
// arguments each script's comment lists). Every write but a claim, an adoption and a delete first
// checks the owner's epoch (FENCE): a replica that lost the session gets FENCED.
import { Script } from './script.ts';

const FENCE = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return redis.error_reply('FENCED session is owned by a newer epoch')
end
`;

// A key of a session created while it is offline (a message queued for it, here or by an adopter)
// expires with it: it takes the state hash's TTL (none while online). Without this the queue of a
// session that went offline with an empty queue outlived the session, and came back with a later
// session of the same client id.
const FOLLOW_TTL = `
local function followTtl(key)
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end
`;

// KEYS: base, inflight, qos2, queue, epoch counter, this replica's owned set.
// ARGV: replica, clean start (1/0), key prefix, client id, the connection's session expiry ('' =
// not known). The previous owner's `owned:` set is derived in the script (standalone or Sentinel
// Redis; not Redis Cluster). `conn` marks a client connected to the owner: should the owner crash,
// the adopter knows the connection ended then (its will is due). A delayed will's due time goes:
// the client is back in time. [MQTT-3.1.3-9] `moving` marks a session taken from a live owner until
// the new owner loads it: the old owner's handover (HANDOVER) lands only in between.
export const CLAIM = new Script(`
local epoch = redis.call('INCR', KEYS[5])
local prev = redis.call('HGET', KEYS[1], 'owner')
local present = redis.call('EXISTS', KEYS[1])
if ARGV[2] == '1' then
  redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  present = 0
end
if prev and prev ~= ARGV[1] then redis.call('SREM', ARGV[3] .. 'owned:' .. prev, ARGV[4]) end
redis.call('SADD', KEYS[6], ARGV[4])
local released = redis.call('HGET', KEYS[1], 'released')
if released then redis.call('HDEL', KEYS[1], 'released') end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', epoch, 'conn', 1)
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'expiry', ARGV[5]) end
redis.call('HDEL', KEYS[1], 'willAt', 'sent', 'readTo', 'moving')
redis.call('ZREM', ARGV[3] .. 'released-wills', ARGV[4])
if prev and prev ~= ARGV[1] and ARGV[2] ~= '1' then redis.call('HSET', KEYS[1], 'moving', 1) end
for i = 1, 4 do redis.call('PERSIST', KEYS[i]) end
return {epoch, prev or '', present, released or ''}
`);

// KEYS: base, hash. ARGV: epoch, field, value ('' deletes).
export const HASH_SET = new Script(`${FENCE}${FOLLOW_TTL}
if ARGV[3] == '' then redis.call('HDEL', KEYS[2], ARGV[2]) else redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
if KEYS[2] ~= KEYS[1] then followTtl(KEYS[2]) end
return 1
`);

// KEYS: base, set. ARGV: epoch, member, add (1) or remove (0). Returns whether it changed.
export const SET_MEMBER = new Script(`${FENCE}${FOLLOW_TTL}
if ARGV[3] == '1' then
  local added = redis.call('SADD', KEYS[2], ARGV[2])
  followTtl(KEYS[2])
  return added
end
return redis.call('SREM', KEYS[2], ARGV[2])
`);

// KEYS: base, queue. ARGV: epoch, frame, max messages, max bytes, policy. Returns {stored 1/0, dropped from head}.
export const ENQUEUE = new Script(`${FENCE}${FOLLOW_TTL}
local size = #ARGV[2]
local maxn, maxb = tonumber(ARGV[3]), tonumber(ARGV[4])
if maxn == 0 or size > maxb then return {0, 0} end
local bytes = tonumber(redis.call('HGET', KEYS[1], 'qbytes') or '0')
local n = redis.call('LLEN', KEYS[2])
local dropped = 0
while n >= maxn or bytes + size > maxb do
  if ARGV[5] == 'drop-newest' then return {0, dropped} end
  local head = redis.call('LPOP', KEYS[2])
  bytes = bytes - #head
  n = n - 1
  dropped = dropped + 1
end
redis.call('RPUSH', KEYS[2], ARGV[2])
followTtl(KEYS[2])
redis.call('HSET', KEYS[1], 'qbytes', bytes + size)
return {1, dropped}
`);

// KEYS: base, queue, inflight. ARGV: epoch, packet id, record header. Head of the queue → in flight.
export const QUEUE_TO_FLIGHT = new Script(`${FENCE}${FOLLOW_TTL}
local head = redis.call('LPOP', KEYS[2])
if not head then return 0 end
redis.call('HINCRBY', KEYS[1], 'qbytes', -#head)
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3] .. head)
followTtl(KEYS[3])
return 1
`);

// KEYS: the four keys of a session. ARGV: epoch, ttl seconds (0 = never expires).
export const OFFLINE = new Script(`${FENCE}
redis.call('HSET', KEYS[1], 'expiry', ARGV[2])
redis.call('HDEL', KEYS[1], 'conn')
for i = 1, 4 do
  if ARGV[2] == '0' then redis.call('PERSIST', KEYS[i]) else redis.call('EXPIRE', KEYS[i], ARGV[2]) end
end
return 1
`);

// KEYS: the four keys of a session. ARGV: epoch ('' = whoever owns it), key prefix, client id.
export const DELETE = new Script(`
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return redis.error_reply('FENCED session is owned by a newer epoch')
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then redis.call('SREM', ARGV[2] .. 'owned:' .. owner, ARGV[3]) end
redis.call('ZREM', ARGV[2] .. 'released-wills', ARGV[3])
return redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
`);

// KEYS: the four keys of a session, this replica's owned set, the released wills. ARGV: epoch,
// client id. The owner's
// expiry timer ended the session: its keys go, and so does its member of the owner's `owned:` set
// even when Redis expired the keys first (a TTL takes no set member with it: the set of a replica
// that lives long would otherwise grow with every client id that ever went away). A session claimed
// since by a newer epoch is left alone.
export const EXPIRED = new Script(`
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch and epoch ~= ARGV[1] then return 0 end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('SREM', KEYS[5], ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[2])
return 1
`);

// KEYS: base, this replica's owned set, the released wills. ARGV: epoch, client id, bus position.
// A graceful stop lets go of a session it still owns: with no owner left, the next claim anywhere
// needs no takeover round, and reads the bus from where this replica stopped reading. A delayed
// will still pending (`willAt`) is listed with its due time: a live replica adopts the session
// and sends it then (ADOPT_RELEASED), unless the client is back first (CLAIM drops it).
export const RELEASE = new Script(`${FENCE}
redis.call('HDEL', KEYS[1], 'owner')
redis.call('HSET', KEYS[1], 'released', ARGV[3])
redis.call('SREM', KEYS[2], ARGV[2])
local due = redis.call('HGET', KEYS[1], 'willAt')
if due then redis.call('ZADD', KEYS[3], due, ARGV[2]) end
return 1
`);

// KEYS: base, epoch counter, this replica's owned set, the released wills. ARGV: client id, replica.
// Takes a released session whose delayed will is pending (one live replica wins: the entry goes
// with the first try); {0} when it is gone, owned again, or its will no longer due. Returns the
// new epoch and the bus position its releaser had read to (what came after, nobody sent it).
export const ADOPT_RELEASED = new Script(`
redis.call('ZREM', KEYS[4], ARGV[1])
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 or redis.call('HEXISTS', KEYS[1], 'owner') == 1
  or redis.call('HEXISTS', KEYS[1], 'willAt') == 0 or redis.call('HEXISTS', KEYS[1], 'will') == 0 then return {0, ''} end
local released = redis.call('HGET', KEYS[1], 'released') or ''
redis.call('HDEL', KEYS[1], 'released')
local epoch = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'epoch', epoch)
redis.call('SADD', KEYS[3], ARGV[1])
return {epoch, released}
`);

// KEYS: base, epoch counter, this replica's owned set. ARGV: replica, client id, the epoch it held.
// Takes a session back after an outage unless another replica owns it now. The counter restarts at
// 1 when Redis restarted empty: it is moved past the epoch held here first, so the new one is newer.
export const RECLAIM = new Script(`
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
local epoch = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', epoch)
redis.call('SADD', KEYS[3], ARGV[2])
return epoch
`);

/**
 * Writes a session's message state after clearing what Redis held of it (fields the script keeps
 * are not cleared): ARGV from `first` on are counted runs: state fields (name, value), in flight
 * (packet id, record), incoming QoS 2 ids, queue frames.
 */
function replaceState(first: number, keep: string): string {
  return `${FOLLOW_TTL}
redis.call('UNLINK', KEYS[2], KEYS[3], KEYS[4])
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not (${keep}) then redis.call('HDEL', KEYS[1], f) end
end
local i = ${first}
local function run(step, write)
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do write(i); i = i + step end
end
run(2, function(j) redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1]) end)
run(2, function(j) redis.call('HSET', KEYS[2], ARGV[j], ARGV[j + 1]) end)
run(1, function(j) redis.call('SADD', KEYS[3], ARGV[j]) end)
local bytes = 0
run(1, function(j) redis.call('RPUSH', KEYS[4], ARGV[j]); bytes = bytes + #ARGV[j] end)
redis.call('HSET', KEYS[1], 'qbytes', bytes)
for k = 2, 4 do followTtl(KEYS[k]) end
return 1
`;
}

// KEYS: the four keys of a session. ARGV: epoch, then the runs of replaceState. After an outage:
// everything but owner and epoch is what the owner holds.
export const REWRITE = new Script(`${FENCE}${replaceState(2, "f == 'owner' or f == 'epoch'")}`);

// KEYS: the four keys of a session. ARGV: the new owner's epoch, what the old owner sent (per origin,
// the highest sequence, JSON), the bus stream id it had read to ('' = none), then the runs of
// replaceState (subscriptions as state fields). The
// old owner's last word at a takeover, while the new one waits for it: subscriptions, in flight
// (with its stage), incoming QoS 2 ids and queue as they were when it let go; the rest of the state
// is the new owner's. 0 when the new owner no longer waits (it loaded already, or another claimed).
export const HANDOVER = new Script(`
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'moving') ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'sent', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'readTo', ARGV[3]) end
${replaceState(4, "string.sub(f, 1, 4) ~= 'sub:'")}`);
