// Owns the conversion between the router's Message (broker/router/message.ts) and the Envelope the
// cluster carries and stores, and the de-duplication a resume needs: the one seam phase 2 touches
// in both directions. Pure.
import { newMessage } from '../router/message.ts';
import type { Message } from '../router/message.ts';
import type { Unstamped } from './bus.ts';
import type { Envelope, SharedPick } from './envelope.ts';
import type { InflightRecord } from './session-store.ts';

/** The cluster form of a message accepted here (stamp it with bus.stamp() before publishing). */
export function envelopeFromMessage(msg: Message, sharedPicks: SharedPick[] | undefined): Unstamped {
  return {
    senderId: msg.senderId, topic: msg.topic, payload: msg.payload, qos: msg.qos, retain: msg.retain,
    expiresAt: msg.expiresAt, properties: msg.properties, sharedPicks,
  };
}

/**
 * The router's form of a message from another replica or from Redis. Its arrival time is now (the
 * delivery histogram then measures this replica's part); the payload is copied when it is a view
 * into a larger frame, so a queued message does not pin a whole stream read.
 */
export function messageFromEnvelope(e: Envelope): Message {
  const p = e.payload;
  const payload = p.buffer.byteLength > 2 * p.length + 64 ? Buffer.from(p) : p;
  return newMessage({ topic: e.topic, payload, qos: e.qos, retain: e.retain }, e.properties, e.expiresAt, e.senderId, performance.now());
}

const identity = (e: Envelope): string => `${e.origin}\u0000${e.seq}`;

/**
 * Messages routed to a session while it was being resumed here (claimed, not yet loaded) that the
 * previous owner had not already queued or put in flight: the merge is by (origin, sequence), so a
 * message both saw is delivered once.
 */
export function unseenDuringResume(buffered: readonly Envelope[], queue: readonly Envelope[], inflight: ReadonlyMap<number, InflightRecord>): Envelope[] {
  const seen = new Set(queue.map(identity));
  for (const r of inflight.values()) if (r.message !== undefined) seen.add(identity(r.message));
  return buffered.filter((e) => {
    const id = identity(e);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}
