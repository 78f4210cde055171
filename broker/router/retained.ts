// Retained messages: one per topic; an empty payload deletes [MQTT-3.3.1-5..-11]. Bounded by a
// message count and a budget of bytes (`limits.maxRetainedBytes`) that counts everything a kept
// message holds: payload, topic, properties and the objects around them (messageBytes). A kept
// message is a compact copy without the live message's encoded templates; each replay hands out a
// fresh copy, so templates made for one subscriber are not kept in the store. Each kept message
// remembers who published it and when that right was last confirmed, so the broker can check the
// right again before handing it out (router/router.ts retainedFor).
import { compactPayload, messageBytes } from './message.ts';
import type { Message } from './message.ts';
import { topicMatches } from './topics.ts';

/** Who published a retained message and when the right to publish it was last confirmed. */
export interface RetainedOrigin<P> {
  /** undefined: the broker itself, or a publisher every right is granted to. */
  publisher: P | undefined;
  /** Epoch ms of the last confirmation. */
  checkedAt: number;
  /** The broker's auth-data generation at that confirmation. */
  generation: number;
}

export interface RetainedEntry<P> extends RetainedOrigin<P> {
  readonly message: Message;
}

export class RetainedStore<P = unknown> {
  private readonly byTopic = new Map<string, RetainedEntry<P>>();
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  private heldBytes = 0;

  constructor(maxMessages: number, maxBytes: number) {
    this.maxMessages = maxMessages;
    this.maxBytes = maxBytes;
  }

  get size(): number {
    return this.byTopic.size;
  }

  /** messageBytes() of the messages held, the quantity `maxBytes` bounds. */
  get bytes(): number {
    return this.heldBytes;
  }

  /**
   * Stores, replaces or (empty payload) deletes. Returns false when the message was not kept (the
   * store is full or the byte budget would be exceeded). A replacement that does not fit still
   * removes the topic's previous message: a new subscriber must not be handed a value the
   * publisher has since replaced as if it were current.
   */
  store(msg: Message, origin: RetainedOrigin<P> = { publisher: undefined, checkedAt: 0, generation: 0 }): boolean {
    const old = this.byTopic.get(msg.topic);
    if (msg.payload.length === 0) {
      if (old !== undefined) this.delete(old);
      return true;
    }
    const freed = old === undefined ? 0 : messageBytes(old.message);
    if (this.heldBytes - freed + messageBytes(msg) > this.maxBytes) {
      if (old !== undefined) this.delete(old);
      return false;
    }
    if (old === undefined && this.byTopic.size >= this.maxMessages) return false;
    const message: Message = { ...msg, encoded: undefined };
    compactPayload(message);
    this.byTopic.set(msg.topic, { message, publisher: origin.publisher, checkedAt: origin.checkedAt, generation: origin.generation });
    this.heldBytes += messageBytes(message) - freed;
    return true;
  }

  /** Retained messages matching a filter, skipping expired ones (and dropping them); fresh copies. */
  match(filter: string, now: number): Message[] {
    return this.matchEntries(filter, now).map((e) => ({ ...e.message, encoded: undefined }));
  }

  /** The entries behind match(): the stored messages with their origin (not to be handed out as is). */
  matchEntries(filter: string, now: number): RetainedEntry<P>[] {
    const out: RetainedEntry<P>[] = [];
    const exact = !filter.includes('+') && !filter.includes('#');
    if (exact) {
      const e = this.byTopic.get(filter);
      if (e !== undefined) this.keepIfLive(e, now, out);
      return out;
    }
    for (const e of this.byTopic.values()) {
      if (topicMatches(filter, e.message.topic)) this.keepIfLive(e, now, out);
    }
    return out;
  }

  /** Removes `entry` if it is still the topic's retained message (not replaced meanwhile). */
  remove(entry: RetainedEntry<P>): void {
    if (this.byTopic.get(entry.message.topic) === entry) this.delete(entry);
  }

  private keepIfLive(e: RetainedEntry<P>, now: number, out: RetainedEntry<P>[]): void {
    const m = e.message;
    if (m.expiresAt !== 0 && m.expiresAt <= now) {
      this.delete(e);
      return;
    }
    out.push(e);
  }

  private delete(e: RetainedEntry<P>): void {
    this.byTopic.delete(e.message.topic);
    this.heldBytes -= messageBytes(e.message);
  }
}
