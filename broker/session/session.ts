// Session state that outlives a connection: subscriptions, outgoing QoS 1/2 in flight, the queue
// of messages waiting for room (receive maximum, socket backpressure, offline), incoming QoS 2
// packet ids awaiting PUBREL, the will, and expiry. [MQTT-4.1, 4.3, 4.4, 4.9]
import { withPacketId } from '../protocol/codec.ts';
import { compactPayload, encodeWithProperties, messageBytes, publishTemplate } from '../router/message.ts';
import type { Message, PublishCopy } from '../router/message.ts';
import type { Subscriber, SubscriptionOptions } from '../router/trie.ts';
import type { Backlog } from './backlog.ts';
import { PacketIdSet } from './packet-ids.ts';
import { MessageQueue } from './queue.ts';

/** Session Expiry Interval meaning "never" (v5 0xFFFFFFFF; a 3.1.1 persistent session). [MQTT-3.1.2-11.2] */
export const NEVER_EXPIRES = 0xffffffff;

/** What a session needs from its live connection. */
export interface SessionLink {
  readonly v5: boolean;
  /** Client's Maximum Packet Size (v5), Infinity when unset. */
  readonly clientMaxPacketSize: number;
  /** Client's Topic Alias Maximum (v5), 0 when unset. */
  readonly clientTopicAliasMaximum: number;
  /** Client's Receive Maximum (v5), 65535 when unset. */
  readonly clientReceiveMaximum: number;
  write(buf: Buffer): void;
  /** True while the socket's write buffer is above the high-water mark. */
  congested(): boolean;
  /**
   * Outbound topic alias for a topic (v5 clients with Topic Alias Maximum > 0): the alias and
   * whether the client already knows it; undefined when no alias is used.
   */
  outboundAlias(topic: string): { alias: number; known: boolean } | undefined;
}

/** Counters and settings the session reports into (metrics live in the broker). */
export interface SessionEnv {
  maxInflight: number;
  maxQueued: number;
  /** Bound on the queue's messageBytes() total. */
  maxQueuedBytes: number;
  queueOverflow: 'drop-oldest' | 'drop-newest';
  onDrop(reason: 'queue-full' | 'offline-qos0' | 'slow-consumer' | 'expired' | 'too-large' | 'not-authorized'): void;
  onDeliver(msg: Message): void;
  /** Where a connected session's queue length is reported: senders go at its pace (backlog.ts). */
  backlog?: Backlog;
}

/**
 * Write-through of a persistent session's message state to the cluster's session store
 * (broker/replication.ts); absent with `backend: memory`. Each call returns at once: the write is
 * queued on the replica's one command connection ahead of whatever it sends Redis next (so a
 * publisher's PUBACK, given after the bus took its message, comes after these writes landed).
 */
export interface SessionMirror {
  /** A QoS 1/2 message goes in flight under `messageId` (before its PUBLISH is written). */
  inflight(messageId: number, msg: Message, copy: PublishCopy, fromQueue: boolean): void;
  /** PUBREC received: only the PUBREL is left. */
  pubrel(messageId: number, copy: PublishCopy): void;
  /** PUBACK, PUBCOMP, a refused PUBREC, or a PUBLISH that could not be written. */
  done(messageId: number): void;
  /** A message was queued (the store drops like the in-memory queue). */
  enqueued(msg: Message): void;
  /** An incoming QoS 2 id awaits PUBREL (true) or was released (false). */
  incomingQos2(messageId: number, held: boolean): void;
}

export interface StoredSubscription {
  /** Filter without the `$share/group/` prefix. */
  filter: string;
  group: string | undefined;
  options: SubscriptionOptions;
}

/** A QoS 1/2 copy on its way to the client; `messageId` 0 = not sent yet. */
export interface Outgoing extends PublishCopy {
  msg: Message;
  /** 'publish' = waiting for PUBACK/PUBREC; 'pubrel' = PUBREL sent, waiting for PUBCOMP. */
  stage: 'publish' | 'pubrel';
}

/**
 * The copy of a QoS 0 delivery, filled in place: sendPublish() reads it synchronously and keeps
 * nothing, so a QoS 0 fan-out allocates no record per subscriber.
 */
const qos0Copy: PublishCopy = { qos: 0, retain: false, messageId: 0, subscriptionIds: undefined };

/** A session's message state as restore() takes it and messageState() gives it (read-only). */
export interface SessionMessageState {
  /** Outgoing QoS 1/2 by packet id, with its stage. */
  readonly inflight: ReadonlyMap<number, Readonly<Outgoing>>;
  /** Incoming QoS 2 packet ids awaiting PUBREL, ascending. */
  readonly incomingQos2: readonly number[];
  /** The queue, oldest first. */
  readonly queued: Iterable<Readonly<Outgoing>>;
}

const NO_INFLIGHT: ReadonlyMap<number, Outgoing> = new Map();

export interface WillMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  delaySeconds: number;
  properties: Message['properties'];
  expirySeconds: number;
}

export class Session implements Subscriber {
  readonly clientId: string;
  readonly subscriptions = new Map<string, StoredSubscription>();
  link: SessionLink | undefined = undefined;
  /** Seconds the session survives its connection; 0 = ends with it. 0xFFFFFFFF = never. */
  expirySeconds = 0;
  expiryTimer: NodeJS.Timeout | undefined = undefined;
  will: WillMessage | undefined = undefined;
  willTimer: NodeJS.Timeout | undefined = undefined;
  /** Publishes the delayed will now (session ended before the delay ran out). */
  pendingWill: (() => void) | undefined = undefined;
  /** Write-through to the cluster (persistent sessions with `backend: redis`), else undefined. */
  mirror: SessionMirror | undefined = undefined;
  /** The route() that last matched one of this session's subscriptions (router/router.ts, overlap detection). */
  routeMark = 0;
  // Created on first use: an idle connection's session should cost as little memory as possible.
  private qos2In: PacketIdSet | undefined = undefined;
  private inflightMap: Map<number, Outgoing> | undefined = undefined;
  private readonly queue = new MessageQueue<Outgoing>((out) => messageBytes(out.msg));
  private nextId = 1;
  private readonly env: SessionEnv;

  constructor(clientId: string, env: SessionEnv) {
    this.clientId = clientId;
    this.env = env;
  }

  isOnline(): boolean {
    return this.link !== undefined;
  }

  // Incoming QoS 2 packet ids that got PUBREC and await PUBREL [MQTT-4.3.3]: the message was
  // routed on PUBLISH, so a resent PUBLISH with such an id is answered without routing it again.

  /** The client's QoS 2 PUBLISH with this id was routed and awaits its PUBREL. */
  awaitsPubrel(messageId: number): boolean {
    return this.qos2In?.has(messageId) ?? false;
  }

  /** How many incoming QoS 2 ids await PUBREL (bounded by Receive Maximum for v5). */
  get awaitingPubrelCount(): number {
    return this.qos2In?.size ?? 0;
  }

  /** A QoS 2 PUBLISH from the client was routed and answered with PUBREC. */
  holdForPubrel(messageId: number): void {
    (this.qos2In ??= new PacketIdSet()).add(messageId);
    this.mirror?.incomingQos2(messageId, true);
  }

  /** PUBREL from the client: the id is free again; false when it was not held. */
  releasePubrel(messageId: number): boolean {
    const held = this.qos2In?.delete(messageId) ?? false;
    if (held) this.mirror?.incomingQos2(messageId, false);
    return held;
  }

  private get inflight(): Map<number, Outgoing> {
    return (this.inflightMap ??= new Map());
  }

  get inflightCount(): number {
    return this.inflightMap?.size ?? 0;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /** messageBytes() of the queued messages. */
  get queuedBytes(): number {
    return this.queue.bytes;
  }

  /**
   * A message routed to this session by one matching subscription (or by several merged into one
   * copy: `identifiers` then carries all their Subscription Identifiers). [MQTT-3.3.4-3]
   */
  deliver(msg: Message, options: SubscriptionOptions, retainedReplay: boolean, identifiers?: number[]): void {
    const ids = identifiers ?? options.identifier;
    const qos = msg.qos < options.qos ? msg.qos : options.qos;
    // [MQTT-3.3.1-9] replayed retained messages keep the flag; live ones only with retain-as-published
    const retain = retainedReplay ? true : options.retainAsPublished && msg.retain;
    const link = this.link;
    if (qos === 0) {
      if (link === undefined) {
        this.env.onDrop('offline-qos0');
        return;
      }
      if (link.congested()) {
        this.env.onDrop('slow-consumer');
        return;
      }
      qos0Copy.retain = retain;
      qos0Copy.subscriptionIds = ids;
      this.sendPublish(link, msg, qos0Copy, false);
      qos0Copy.subscriptionIds = undefined;
      return;
    }
    const out: Outgoing = { msg, qos, retain, subscriptionIds: ids, messageId: 0, stage: 'publish' };
    if (link !== undefined && this.queuedCount === 0 && this.hasRoom(link)) {
      this.sendTracked(link, out, false);
    } else {
      this.enqueue(out);
    }
  }

  private hasRoom(link: SessionLink): boolean {
    const limit = link.clientReceiveMaximum < this.env.maxInflight ? link.clientReceiveMaximum : this.env.maxInflight;
    return this.inflightCount < limit && !link.congested();
  }

  /**
   * Queues a message within both bounds, count and bytes. Over either, drop-newest refuses this
   * message and drop-oldest removes from the head until it fits; a message larger than the whole
   * byte budget is refused either way. Each dropped message is counted once as queue-full.
   */
  private enqueue(out: Outgoing): void {
    const { maxQueued, maxQueuedBytes } = this.env;
    const size = messageBytes(out.msg);
    const queue = this.queue;
    if (maxQueued === 0 || size > maxQueuedBytes) {
      this.env.onDrop('queue-full');
      return;
    }
    while (queue.length >= maxQueued || queue.bytes + size > maxQueuedBytes) {
      this.env.onDrop('queue-full');
      if (this.env.queueOverflow === 'drop-newest') return;
      queue.shift();
    }
    compactPayload(out.msg);
    queue.push(out);
    this.mirror?.enqueued(out.msg);
    if (this.link !== undefined) this.env.backlog?.queued(this, queue.length, queue.bytes, this.env);
  }

  private allocateId(): number {
    for (let i = 0; i < 65535; i++) {
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
    return 0;
  }

  private sendTracked(link: SessionLink, out: Outgoing, dup: boolean, fromQueue = false): void {
    if (out.messageId === 0) {
      const id = this.allocateId();
      if (id === 0) {
        this.enqueue(out);
        return;
      }
      out.messageId = id;
    }
    const mirror = this.mirror;
    mirror?.inflight(out.messageId, out.msg, out, fromQueue);
    if (!this.sendPublish(link, out.msg, out, dup)) {
      mirror?.done(out.messageId);
      return;
    }
    compactPayload(out.msg);
    this.inflight.set(out.messageId, out);
  }

  /** Encodes and writes one PUBLISH; false when it was dropped (expired or too large for the client). */
  private sendPublish(link: SessionLink, msg: Message, copy: PublishCopy, dup: boolean): boolean {
    let now = 0;
    if (msg.expiresAt !== 0) {
      now = Date.now();
      if (msg.expiresAt <= now) {
        this.env.onDrop('expired'); // [MQTT-3.3.2-5]
        return false;
      }
    }
    let buf: Buffer;
    const alias = link.v5 && link.clientTopicAliasMaximum > 0 ? link.outboundAlias(msg.topic) : undefined;
    if (link.v5 && (copy.subscriptionIds !== undefined || msg.expiresAt !== 0 || alias !== undefined)) {
      buf = encodeWithProperties(msg, copy, dup, now, alias);
    } else {
      const template = publishTemplate(msg, copy.qos, copy.retain, link.v5);
      buf = copy.qos === 0 ? template : withPacketId(template, copy.messageId, dup);
    }
    if (buf.length > link.clientMaxPacketSize) {
      this.env.onDrop('too-large'); // [MQTT-3.1.2-25]
      return false;
    }
    link.write(buf);
    this.env.onDeliver(msg);
    return true;
  }

  /** PUBACK (QoS 1) or PUBCOMP (QoS 2) from the client: the message is done. */
  acknowledge(messageId: number, expect: 'puback' | 'pubcomp'): boolean {
    const out = this.inflight.get(messageId);
    if (out === undefined) return false;
    if (expect === 'puback' ? out.qos !== 1 : out.stage !== 'pubrel') return false;
    this.inflight.delete(messageId);
    this.mirror?.done(messageId);
    this.drain();
    return true;
  }

  /**
   * PUBREC from the client: the QoS 2 message moves to the PUBREL stage, or is dropped when the
   * client refused it (v5 rc ≥ 0x80); false when no QoS 2 message has this id.
   */
  advanceToPubrel(messageId: number, refused: boolean): boolean {
    const out = this.inflight.get(messageId);
    if (out === undefined || out.qos !== 2) return false;
    if (refused) {
      this.inflight.delete(messageId);
      this.mirror?.done(messageId);
      this.drain();
      return true;
    }
    out.stage = 'pubrel';
    this.mirror?.pubrel(messageId, out);
    return true;
  }

  /** Moves queued messages into flight while there is room. */
  drain(): void {
    const link = this.link;
    if (link === undefined) return;
    while (this.queue.length > 0 && this.hasRoom(link)) {
      this.sendTracked(link, this.queue.shift()!, false, true);
    }
    this.env.backlog?.drained(this, this.queue.length, this.queue.bytes, this.env);
  }

  /** A connection took this session: resend in-flight with DUP, then the queue. [MQTT-4.4.0-1] */
  attach(link: SessionLink, encodePubrel: (messageId: number) => Buffer): void {
    this.link = link;
    for (const out of this.inflightMap?.values() ?? []) {
      if (out.stage === 'pubrel') {
        link.write(encodePubrel(out.messageId));
      } else {
        this.sendPublish(link, out.msg, out, true);
      }
    }
    this.drain();
  }

  detach(): void {
    this.link = undefined;
    this.env.backlog?.left(this);
  }

  /**
   * Drops queued and unacknowledged messages whose topic no remaining subscription matches (one
   * was revoked). Messages at the PUBREL stage stay: their payload was already delivered.
   */
  dropUnmatched(matches: (topic: string) => boolean): void {
    for (const [id, out] of this.inflightMap ?? []) {
      if (out.stage === 'publish' && !matches(out.msg.topic)) {
        this.inflightMap!.delete(id);
        this.env.onDrop('not-authorized');
      }
    }
    const removed = this.queue.retain((out) => matches(out.msg.topic));
    for (let i = 0; i < removed.length; i++) this.env.onDrop('not-authorized');
    this.drain(); // room freed in flight goes to what is still queued (online only)
  }

  /**
   * Message state another replica stored for this session (broker/replication.ts), set before
   * attach() resends it: in flight by packet id, incoming QoS 2 ids, then the queue in order. The
   * mirror is not attached yet, so nothing is written back.
   */
  restore(inflight: Iterable<[number, Omit<Outgoing, 'messageId'>]>, incomingQos2: Iterable<number>, queued: Iterable<Omit<Outgoing, 'messageId' | 'stage'>>): void {
    for (const [messageId, out] of inflight) {
      this.inflight.set(messageId, { ...out, messageId });
      if (messageId >= this.nextId) this.nextId = messageId === 65535 ? 1 : messageId + 1;
    }
    for (const id of incomingQos2) (this.qos2In ??= new PacketIdSet()).add(id);
    for (const q of queued) this.queue.push({ ...q, messageId: 0, stage: 'publish' });
  }

  /** What the session holds, read outside the message path: for the write-back after Redis lost it and the handover at a takeover (session/mirror.ts). */
  messageState(): SessionMessageState {
    const held = this.qos2In;
    const incomingQos2: number[] = [];
    for (let id = 1; held !== undefined && incomingQos2.length < held.size && id <= 65535; id++) if (held.has(id)) incomingQos2.push(id);
    return { inflight: this.inflightMap ?? NO_INFLIGHT, incomingQos2, queued: this.queue };
  }

  /** Drops all message state (clean start). */
  clearMessages(): void {
    this.inflightMap = undefined;
    this.queue.clear();
    this.qos2In = undefined;
  }
}
