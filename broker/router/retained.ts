// Retained messages: one per topic; an empty payload deletes. [MQTT-3.3.1-5..-11]
import type { Message } from './message.ts';
import { topicMatches } from './topics.ts';

export class RetainedStore {
  private readonly byTopic = new Map<string, Message>();
  private readonly maxMessages: number;

  constructor(maxMessages: number) {
    this.maxMessages = maxMessages;
  }

  get size(): number {
    return this.byTopic.size;
  }

  /** Stores, replaces or (empty payload) deletes. Returns false when the store is full. */
  store(msg: Message): boolean {
    if (msg.payload.length === 0) {
      this.byTopic.delete(msg.topic);
      return true;
    }
    if (!this.byTopic.has(msg.topic) && this.byTopic.size >= this.maxMessages) return false;
    this.byTopic.set(msg.topic, msg);
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
      this.byTopic.delete(m.topic);
      return;
    }
    out.push(m);
  }
}
