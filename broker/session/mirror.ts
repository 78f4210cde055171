// Owns the write-through of one persistent session to the cluster's session store (the
// SessionMirror a Session calls: in flight, PUBREL stage, done, enqueue, incoming QoS 2 ids; and the
// will of its connection) and the conversions between what the store holds and what a Session
// holds: a resumed session's in-flight and queued records, a will, and the messages a moving
// session missed. broker/replication-sessions.ts and replication-adoption.ts use it.
import type { Envelope } from '../cluster/envelope.ts';
import { envelopeFromMessage, messageFromEnvelope } from '../cluster/routed.ts';
import type { InflightRecord, QueueLimits, SessionSnapshot, SessionStore, StoredWill } from '../cluster/session-store.ts';
import { newMessage } from '../router/message.ts';
import type { Message, PublishCopy } from '../router/message.ts';
import { topicMatches } from '../router/topics.ts';
import type { SubscriptionOptions } from '../router/trie.ts';
import type { ClientConnection } from '../services.ts';
import type { Outgoing, Session, SessionMirror, StoredSubscription, WillMessage } from './session.ts';

/** What a mirror needs of the replica that holds the session. */
export interface MirrorHost {
  readonly sessionStore: SessionStore;
  /** Messages are queued and dropped in Redis as locally. */
  readonly queueLimits: QueueLimits;
  /** A write failed (FENCED: another owner may hold the session now). */
  writeFailed(clientId: string, epoch: number, err: unknown): void;
  /** The CONNECT that opened the session carries `will` (or none): Redis keeps it (see ClusterMirror.connected). */
  keepWill(mirror: ClusterMirror, will: WillMessage | undefined, conn: ClientConnection): void;
}

/** The write-through of one session under one epoch (Session calls it; see SessionMirror). */
export class ClusterMirror implements SessionMirror {
  /** Changes only when the session is claimed again after an outage (Replication.recover). */
  epoch: number;
  /** Clean sessions are claimed (takeover, fencing) but their messages are not written. */
  persistent: boolean;
  /** The will Redis holds for this session, undefined when none (sent, cleared, or never given). */
  will: StoredWill | undefined = undefined;
  /** When that will is due (ms since the epoch) after its connection ended; undefined while connected. */
  willAt: number | undefined = undefined;
  /** Redis may hold a will of an earlier connection (the session was resumed, not created). */
  staleWill = false;
  /**
   * Per origin replica, the highest sequence of a QoS 1/2 message written to the client under this
   * epoch: handed to the next owner at a takeover, so it does not send again what this replica sent
   * after the claim (replication-sessions.ts takeover()).
   */
  readonly sentUpTo = new Map<string, number>();
  readonly clientId: string;
  private readonly host: MirrorHost;

  constructor(host: MirrorHost, clientId: string, epoch: number, persistent: boolean) {
    this.host = host;
    this.clientId = clientId;
    this.epoch = epoch;
    this.persistent = persistent;
  }

  /**
   * The CONNECT set the session's will (undefined: none). With replicas Redis keeps it too: should
   * this replica crash while the client is connected, the replica that adopts the session
   * publishes it (broker/replication-adoption.ts). The handler calls this right after it set it.
   */
  connected(will: WillMessage | undefined, conn: ClientConnection): void {
    this.host.keepWill(this, will, conn);
  }

  write(p: Promise<unknown>): void {
    p.catch((err: unknown) => this.host.writeFailed(this.clientId, this.epoch, err));
  }

  private get store(): SessionStore {
    return this.host.sessionStore;
  }

  inflight(messageId: number, msg: Message, copy: PublishCopy, fromQueue: boolean): void {
    if (!this.persistent) return;
    if (msg.seq > (this.sentUpTo.get(msg.origin) ?? 0)) this.sentUpTo.set(msg.origin, msg.seq);
    const header = { stage: 'publish' as const, qos: copy.qos as 1 | 2, retain: copy.retain, subscriptionIds: idsOf(copy) };
    if (fromQueue) this.write(this.store.queueToInflight(this.clientId, this.epoch, messageId, header));
    else this.write(this.store.setInflight(this.clientId, this.epoch, messageId, { ...header, message: envelopeOf(msg) }));
  }

  pubrel(messageId: number, copy: PublishCopy): void {
    if (!this.persistent) return;
    const record: InflightRecord = { stage: 'pubrel', qos: 2, retain: copy.retain, subscriptionIds: idsOf(copy), message: undefined };
    this.write(this.store.setInflight(this.clientId, this.epoch, messageId, record));
  }

  done(messageId: number): void {
    if (this.persistent) this.write(this.store.deleteInflight(this.clientId, this.epoch, messageId));
  }

  enqueued(msg: Message): void {
    if (this.persistent) this.write(this.store.enqueue(this.clientId, this.epoch, envelopeOf(msg), this.host.queueLimits));
  }

  incomingQos2(messageId: number, held: boolean): void {
    if (this.persistent) this.write(this.store.setIncomingQos2(this.clientId, this.epoch, messageId, held));
  }
}

/**
 * Delivers messages a moving session missed through the session like live ones (queued and
 * written through, sent on attach after its in-flight messages), by its first matching plain
 * subscription, up to `maxQos`. Returns how many.
 */
export function deliverMissed(session: Session, missed: readonly Envelope[], maxQos: 1 | 2): number {
  let delivered = 0;
  for (const e of missed) {
    for (const sub of session.subscriptions.values()) {
      if (sub.group !== undefined || !topicMatches(sub.filter, e.topic)) continue;
      const qos = Math.min(e.qos, sub.options.qos);
      if ((sub.options.noLocal && e.senderId === session.clientId) || qos === 0 || qos > maxQos) break;
      session.deliver(routedMessage(e), sub.options, false);
      delivered++;
      break;
    }
  }
  return delivered;
}

/** The CONNECT set `session`'s will: with replicas it goes to Redis too (ClusterMirror.connected). */
export function keepWillInCluster(session: Session, will: WillMessage | undefined, conn: ClientConnection): void {
  if (session.mirror instanceof ClusterMirror) session.mirror.connected(will, conn);
}

/**
 * Everything this replica holds of `session` as the store writes it back after Redis lost it
 * (restarted empty): a persistent session's subscriptions, in flight, incoming QoS 2 ids and queue;
 * for any session whether its client is connected, and the will of that connection or a delayed
 * one still pending.
 */
export function snapshotOf(session: Session, m: ClusterMirror): SessionSnapshot {
  const snap: SessionSnapshot = {
    connected: session.link !== undefined, expirySeconds: session.expirySeconds, will: m.will, willAt: m.willAt,
    subscriptions: [], inflight: [], incomingQos2: [], queue: [],
  };
  if (!m.persistent) return snap;
  for (const [key, sub] of session.subscriptions) snap.subscriptions.push([key, sub]);
  const state = session.messageState();
  for (const [id, out] of state.inflight) {
    const message = out.stage === 'publish' ? envelopeOf(out.msg) : undefined;
    snap.inflight.push([id, { stage: out.stage, qos: out.qos as 1 | 2, retain: out.retain, subscriptionIds: idsOf(out), message }]);
  }
  snap.incomingQos2.push(...state.incomingQos2);
  for (const out of state.queued) snap.queue.push(envelopeOf(out.msg));
  return snap;
}

/** A connection's will as Redis keeps it: an envelope (origin and sequence unused). */
export function storedWill(will: WillMessage, clientId: string): StoredWill {
  const { topic, payload, qos, retain, properties } = will;
  return {
    delaySeconds: will.delaySeconds, expirySeconds: will.expirySeconds,
    message: { origin: '', seq: 0, senderId: clientId, topic, payload, qos, retain, expiresAt: 0, properties, sharedPicks: undefined },
  };
}

/** The will as a message published now; its Message Expiry Interval counts from now. */
export function willMessage(will: StoredWill): Message {
  const e = will.message;
  const expiresAt = will.expirySeconds === 0 ? 0 : Date.now() + will.expirySeconds * 1000;
  return newMessage({ topic: e.topic, payload: e.payload, qos: e.qos, retain: e.retain }, e.properties, expiresAt, e.senderId, performance.now());
}

function idsOf(copy: PublishCopy): number[] {
  const ids = copy.subscriptionIds;
  return ids === undefined ? [] : typeof ids === 'number' ? [ids] : ids;
}

function envelopeOf(msg: Message): Envelope {
  return { ...envelopeFromMessage(msg, undefined), origin: msg.origin, seq: msg.seq };
}

export function outgoingOf(r: InflightRecord): Omit<Outgoing, 'messageId'> {
  const ids = r.subscriptionIds.length === 0 ? undefined : r.subscriptionIds.length === 1 ? r.subscriptionIds[0] : r.subscriptionIds;
  // At the PUBREL stage the payload was delivered: an empty stand-in keeps the record's shape.
  const msg = r.message === undefined ? stub() : routedMessage(r.message);
  return { msg, qos: r.qos, retain: r.retain, subscriptionIds: ids, stage: r.stage };
}

export function queuedOf(e: Envelope, subs: Iterable<StoredSubscription>): Omit<Outgoing, 'messageId' | 'stage'> {
  let options: SubscriptionOptions | undefined;
  for (const s of subs) {
    if (s.group === undefined && topicMatches(s.filter, e.topic)) {
      options = s.options;
      break;
    }
  }
  const qos = options === undefined ? e.qos : (Math.min(e.qos, options.qos) as 0 | 1 | 2);
  return { msg: routedMessage(e), qos, retain: (options?.retainAsPublished ?? false) && e.retain, subscriptionIds: options?.identifier };
}

export function routedMessage(e: Envelope): Message {
  const msg = messageFromEnvelope(e);
  msg.origin = e.origin;
  msg.seq = e.seq;
  return msg;
}

function stub(): Message {
  return messageFromEnvelope({ origin: '', seq: 0, senderId: '', topic: '', payload: Buffer.alloc(0), qos: 2, retain: false, expiresAt: 0, properties: undefined, sharedPicks: undefined });
}
