// Retained messages: one per topic; an empty payload deletes [MQTT-3.3.1-5..-11]. Bounded by a
// message count and a budget of bytes (`limits.maxRetainedBytes`) that counts everything a kept
// message holds: payload, topic, properties and the objects around them (messageBytes). A kept
// message is a compact copy without the live message's encoded templates; each replay hands out a
// fresh copy, so templates made for one subscriber are not kept in the store.
import { compactPayload, messageBytes } from './message.ts';
import type { Message } from './message.ts';
import { topicMatches } from './topics.ts';

export class RetainedStore {
  private readonly byTopic = new Map<string, Message>();
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
  store(msg: Message): boolean {
    const old = this.byTopic.get(msg.topic);
    if (msg.payload.length === 0) {
      if (old !== undefined) this.delete(old);
      return true;
    }
    const freed = old === undefined ? 0 : messageBytes(old);
    if (this.heldBytes - freed + messageBytes(msg) > this.maxBytes) {
      if (old !== undefined) this.delete(old);
      return false;
    }
    if (old === undefined && this.byTopic.size >= this.maxMessages) return false;
    const kept: Message = { ...msg, encoded: undefined };
    compactPayload(kept);
    this.byTopic.set(msg.topic, kept);
    this.heldBytes += messageBytes(kept) - freed;
    return true;
  }

  /** Retained messages matching a filter, skipping expired ones (and dropping them). */
  match(filter: string, now: number): Message[] {
    const out: Message[] = [];
    const exact = !filter.includes('+') && !filter.includes('#');
    if (exact) {
      const m = this.byTopic.get(filter);
      if (m !== undefined) this.keepIfLive(m, now, out);
      return out;
    }
    for (const m of this.byTopic.values()) {
      if (topicMatches(filter, m.topic)) this.keepIfLive(m, now, out);
    }
    return out;
  }

  private keepIfLive(m: Message, now: number, out: Message[]): void {
    if (m.expiresAt !== 0 && m.expiresAt <= now) {
      this.delete(m);
      return;
    }
    out.push({ ...m, encoded: undefined });
  }

  private delete(m: Message): void {
    this.byTopic.delete(m.topic);
    this.heldBytes -= messageBytes(m);
  }
}
