// SUBSCRIBE → SUBACK, then retained messages per Retain Handling. [MQTT-3.8, 3.9] Filters beyond
// `limits.maxSubscriptionsPerClient` are refused one by one (0x97 Quota exceeded; 0x80 on 3.1.1), and
// so are filters the auth chain denies (0x87; 0x80 on 3.1.1): the connection stays open.
import type { Connection } from '../connection.ts';
import { encodePacket } from '../protocol/codec.ts';
import type { Packet } from '../protocol/codec.ts';
import { RC } from '../protocol/reason-codes.ts';
import { filterProblem, parseShared } from '../router/topics.ts';
import type { SubscriptionOptions } from '../router/trie.ts';

type SubscribePacket = Extract<Packet, { cmd: 'subscribe' }>;

interface Planned {
  key: string;
  filter: string;
  group: string | undefined;
  options: SubscriptionOptions;
  /** Reason code for SUBACK; < 0x80 means the subscription will be made. */
  code: number;
}

export function handleSubscribe(conn: Connection, packet: SubscribePacket): Promise<void> | undefined {
  const broker = conn.broker;
  const limits = broker.config.limits;
  const identifier = packet.properties?.subscriptionIdentifier;
  // A repeated Subscription Identifier never gets here (protocol/wire-rules.ts).
  if (identifier === 0) {
    conn.close(RC.PROTOCOL_ERROR, 'subscription-identifier-invalid'); // [MQTT-3.8.2.1.2]
    return undefined;
  }
  if (packet.subscriptions.length === 0) {
    conn.close(RC.PROTOCOL_ERROR, 'subscribe-without-filters'); // [MQTT-3.8.3-3]
    return undefined;
  }
  const planned: Planned[] = [];
  for (const s of packet.subscriptions) {
    const options: SubscriptionOptions = {
      qos: s.qos,
      noLocal: s.nl === true,
      retainAsPublished: s.rap === true,
      retainHandling: (s.rh ?? 0) as 0 | 1 | 2,
      identifier,
    };
    const shared = parseShared(s.topic);
    let code: number = s.qos;
    let filter = s.topic;
    let group: string | undefined;
    if (shared instanceof Error) {
      code = RC.TOPIC_FILTER_INVALID;
    } else {
      if (shared !== undefined) {
        filter = shared.filter;
        group = shared.group;
        if (options.noLocal) {
          conn.close(RC.PROTOCOL_ERROR, 'no-local-on-shared-subscription'); // [MQTT-3.8.3-4]
          return undefined;
        }
      }
      if (filterProblem(filter, limits) !== undefined) code = RC.TOPIC_FILTER_INVALID;
    }
    planned.push({ key: s.topic, filter, group, options, code });
  }
  if (conn.authorizeAll) return finish(conn, packet, planned);
  const asked = planned.filter((p) => p.code < 0x80);
  return broker.authorizeMany(conn.client!, 'subscribe', asked.map((p) => ({ topic: p.key, qos: p.options.qos }))).then((verdicts) => {
    if (conn.state === 'closed') return undefined;
    // A denied filter is answered in SUBACK whatever `denyAction` says: that setting is about
    // PUBLISH (docs/auth-semantics.md), and a SUBACK failure code already refuses.
    verdicts.forEach((ok, i) => {
      if (!ok) asked[i]!.code = RC.NOT_AUTHORIZED;
    });
    return finish(conn, packet, planned);
  });
}

function finish(conn: Connection, packet: SubscribePacket, planned: Planned[]): Promise<void> | undefined {
  const broker = conn.broker;
  const session = conn.session!;
  const existed: boolean[] = [];
  // Counted here, synchronously, not when the packet arrived: an earlier SUBSCRIBE may have
  // finished its authorization in between. Replacing a subscription does not add one.
  const quota = broker.config.limits.maxSubscriptionsPerClient;
  for (const p of planned) {
    if (p.code < 0x80 && !session.subscriptions.has(p.key) && session.subscriptions.size >= quota) p.code = RC.QUOTA_EXCEEDED;
    if (p.code >= 0x80) {
      existed.push(false);
      continue;
    }
    existed.push(broker.subscribe(session, p.key, p.filter, p.group, p.options));
  }
  // v3.1.1 has a single failure code 0x80. [MQTT-3.9.3]
  const granted = planned.map((p) => (p.code >= 0x80 && !conn.v5 ? 0x80 : p.code));
  conn.write(encodePacket({ cmd: 'suback', messageId: packet.messageId ?? 0, granted }, conn.version));
  const replays = planned.filter((p, i) => {
    if (p.code >= 0x80 || p.group !== undefined) return false; // shared subscriptions get no retained messages
    const rh = p.options.retainHandling;
    return !(rh === 2 || (rh === 1 && existed[i])); // [MQTT-3.3.1-9, 3.3.1-10, 3.3.1-11]
  });
  return replayRetained(conn, replays, 0, Date.now());
}

/**
 * Delivers the retained messages of each filter in turn. When a publisher's right must be asked
 * again (router/router.ts retainedFor) the rest waits for it, and so does the connection's next packet.
 */
function replayRetained(conn: Connection, replays: Planned[], from: number, now: number): Promise<void> | undefined {
  const session = conn.session!;
  for (let k = from; k < replays.length; k++) {
    const p = replays[k]!;
    const found = conn.broker.retainedFor(p.filter, now);
    if (found instanceof Promise) {
      return found.then((messages) => {
        if (conn.state === 'closed') return undefined;
        for (const msg of messages) session.deliver(msg, p.options, true);
        return replayRetained(conn, replays, k + 1, now);
      });
    }
    for (const msg of found) session.deliver(msg, p.options, true);
  }
  return undefined;
}
