// PUBLISH from a client: topic alias, validation, authorization, routing, then PUBACK/PUBREC.
// QoS 2 is delivered once on PUBLISH and its packet id held until PUBREL, so a resent PUBLISH
// (DUP) is answered without routing it again. [MQTT-4.3.3, method A]
import type { Connection } from '../connection.ts';
import { encodeAck } from '../protocol/codec.ts';
import type { FastPublish, PublishPacket } from '../protocol/codec.ts';
import { RC } from '../protocol/reason-codes.ts';
import { newMessage } from '../router/message.ts';
import type { ForwardedProperties } from '../router/message.ts';
import { publishTopicProblem } from '../router/topics.ts';

type PublishProperties = NonNullable<PublishPacket['properties']>;

/**
 * A PUBLISH as the handler takes it: the fast decoder's result itself (no copy on the hot path),
 * or one made from a packet the general parser read. The handler may replace `topic` (alias).
 */
export interface InboundPublish extends FastPublish {
  properties?: PublishProperties | undefined;
}

export function publishFromPacket(conn: Connection, packet: PublishPacket): Promise<void> | undefined {
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  const { topic, qos, retain, dup, properties } = packet;
  return handlePublish(conn, { topic, qos, retain, dup, messageId: packet.messageId ?? 0, payload, properties });
}

function forwarded(p: PublishProperties): ForwardedProperties | undefined {
  let out: ForwardedProperties | undefined;
  if (p.payloadFormatIndicator !== undefined) (out ??= {}).payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.contentType !== undefined) (out ??= {}).contentType = p.contentType;
  if (p.responseTopic !== undefined) (out ??= {}).responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) (out ??= {}).correlationData = p.correlationData;
  if (p.userProperties !== undefined) (out ??= {}).userProperties = p.userProperties;
  return out;
}

/**
 * The steps: header flags and properties, topic alias, topic name, QoS 2 bookkeeping, the `$`
 * namespace, authorization, then routing and the answer. A step that refuses has already closed
 * the connection or answered the client, and returns false.
 */
export function handlePublish(conn: Connection, publish: InboundPublish): Promise<void> | undefined {
  conn.broker.metrics.messagesIn++;
  conn.countPublish();
  if (!flagsAllowed(conn, publish) || !resolveTopicAlias(conn, publish) || !topicAllowed(conn, publish)) return undefined;
  if (publish.qos === 2 && !qos2Admitted(conn, publish.messageId)) return undefined;
  // Clients never publish into the broker's own `$` namespace. (docs/hostile-inputs.md #8, #24)
  if (publish.topic.charCodeAt(0) === 0x24) {
    refusePublish(conn, publish, 'publish to $-topic');
    return undefined;
  }
  return authorizeAndAccept(conn, publish);
}

function flagsAllowed(conn: Connection, publish: InboundPublish): boolean {
  if (publish.qos === 0 && publish.dup) {
    conn.close(RC.PROTOCOL_ERROR, 'dup-on-qos0'); // [MQTT-3.3.1-2] (docs/hostile-inputs.md #30)
    return false;
  }
  if (publish.properties?.subscriptionIdentifier !== undefined) {
    conn.close(RC.PROTOCOL_ERROR, 'subscription-id-from-client'); // [MQTT-3.3.4-6]
    return false;
  }
  return true;
}

/** A v5 Topic Alias sets or replaces the alias, or stands for the topic when the topic is empty. */
function resolveTopicAlias(conn: Connection, publish: InboundPublish): boolean {
  const alias = publish.properties?.topicAlias;
  if (alias === undefined) return true;
  if (alias === 0 || alias > conn.broker.config.limits.topicAliasMaximum) {
    conn.close(RC.TOPIC_ALIAS_INVALID, 'topic-alias-invalid'); // [MQTT-3.3.2-8, 3.3.2-9]
    return false;
  }
  if (publish.topic.length > 0) {
    conn.topicAliases.set(alias, publish.topic);
    return true;
  }
  const known = conn.topicAliases.get(alias);
  if (known === undefined) {
    conn.close(RC.PROTOCOL_ERROR, 'topic-alias-unknown');
    return false;
  }
  publish.topic = known;
  return true;
}

function topicAllowed(conn: Connection, publish: InboundPublish): boolean {
  const problem = publishTopicProblem(publish.topic, conn.broker.config.limits);
  if (problem === undefined) return true;
  conn.close(RC.TOPIC_NAME_INVALID, 'topic-name-invalid', problem); // docs/hostile-inputs.md #7, #19, #20
  return false;
}

/** A resent QoS 2 PUBLISH is answered, not routed again; one more than Receive Maximum closes (v5). */
function qos2Admitted(conn: Connection, messageId: number): boolean {
  const session = conn.session!;
  if (session.awaitsPubrel(messageId)) {
    conn.write(encodeAck('pubrec', messageId, 0, conn.v5)); // duplicate: already routed
    return false;
  }
  // v5 clients were told Receive Maximum = maxInflight in CONNACK: one more is a protocol
  // error. [MQTT-3.3.4-7] MQTT 3.1.1 has no Receive Maximum, so a client may hold every packet
  // id at once and cannot anticipate a limit: it is never disconnected for it. The id space
  // (65,535) is its bound, held in at most 8 KiB (session/packet-ids.ts).
  if (conn.v5 && session.awaitingPubrelCount >= conn.broker.config.limits.maxInflight) {
    conn.close(RC.RECEIVE_MAXIMUM_EXCEEDED, 'receive-maximum-exceeded');
    return false;
  }
  return true;
}

/** Without I/O when the answer is known (every right granted, superuser, cached); else after the hook answers. */
function authorizeAndAccept(conn: Connection, publish: InboundPublish): Promise<void> | undefined {
  if (conn.authorizeAll) return accept(conn, publish);
  const client = conn.client!;
  // The request record the hook needs is made once here, and read by both paths.
  const request = { action: 'publish' as const, topic: publish.topic, qos: publish.qos, retain: publish.retain };
  const known = conn.broker.authorizeKnown(client, request);
  if (known !== undefined) return decided(conn, known, publish);
  return conn.broker.authorize(client, request).then((allowed) => {
    if (conn.state === 'closed') return;
    return decided(conn, allowed, publish);
  });
}

function decided(conn: Connection, allowed: boolean, publish: InboundPublish): Promise<void> | undefined {
  if (allowed) {
    return accept(conn, publish);
  } else if (conn.broker.config.authorization.denyAction === 'disconnect') {
    conn.close(RC.NOT_AUTHORIZED, 'publish-not-authorized');
  } else {
    refusePublish(conn, publish, 'not authorized');
  }
}

/** QoS 0 dropped; QoS 1/2 answered with 0x87 (v5) or a plain ack (v3, which has no refusal). */
function refusePublish(conn: Connection, publish: InboundPublish, why: string): void {
  conn.broker.metrics.drop('not-authorized');
  conn.broker.log.debug({ clientId: conn.clientId, why }, 'publish refused');
  if (publish.qos === 1) conn.write(encodeAck('puback', publish.messageId, RC.NOT_AUTHORIZED, conn.v5));
  if (publish.qos === 2) conn.write(encodeAck('pubrec', publish.messageId, RC.NOT_AUTHORIZED, conn.v5));
}

/** A promise when the client must wait before its next packet (a session it published to is behind). */
function accept(conn: Connection, publish: InboundPublish): Promise<void> | undefined {
  const props = publish.properties;
  const expiry = props?.messageExpiryInterval;
  const msg = newMessage(
    publish, props === undefined ? undefined : forwarded(props),
    expiry === undefined ? 0 : Date.now() + expiry * 1000, conn.clientId, performance.now(),
  );
  const { backlog } = conn.broker;
  const presses = backlog.presses;
  backlog.publisher = conn.session;
  let routed: Promise<void> | undefined;
  try {
    routed = conn.broker.route(msg, conn.authorizeAll ? undefined : conn.client);
  } finally {
    backlog.publisher = undefined;
  }
  if (routed !== undefined && publish.qos > 0) {
    acknowledgeWhenRouted(conn, publish, routed);
  } else {
    // QoS 0 has no acknowledgement to refuse: a message Redis did not take is dropped and counted
    // (a rejection nobody handled would end the process).
    routed?.catch(() => conn.broker.metrics.drop('state-backend'));
    acknowledge(conn, publish);
  }
  if (backlog.presses === presses) return undefined;
  // Queued for a session that is behind: this client waits for it (TCP pushes back on it).
  const room = backlog.room();
  return room === undefined ? undefined : conn.waitForRoom(room);
}

/**
 * With replicas, QoS 1/2 are answered once Redis took the message (every replica will get it);
 * if it did not, v5 gets 0x80, and a 3.1.1 client — whose protocol has no negative PUBACK and never
 * times a publish out — loses its connection: the only answer that makes it send the message again
 * (after reconnecting) instead of waiting for an acknowledgement forever (docs/ha.md). The
 * connection's next packets do not wait: acks of one connection still leave in order, since the
 * bus writes of one replica are answered in order.
 */
function acknowledgeWhenRouted(conn: Connection, publish: InboundPublish, routed: Promise<void>): void {
  const { qos, messageId } = publish;
  if (qos === 2) conn.session!.holdForPubrel(messageId);
  routed.then(() => {
    if (conn.state === 'closed') return;
    conn.write(encodeAck(qos === 1 ? 'puback' : 'pubrec', messageId, 0, conn.v5));
  }, () => {
    if (qos === 2) conn.session?.releasePubrel(messageId);
    conn.broker.metrics.drop('state-backend');
    if (conn.state === 'closed') return;
    if (!conn.v5) conn.close(RC.UNSPECIFIED_ERROR, 'state-backend-unavailable');
    else conn.write(encodeAck(qos === 1 ? 'puback' : 'pubrec', messageId, RC.UNSPECIFIED_ERROR, conn.v5));
  });
}

function acknowledge(conn: Connection, publish: InboundPublish): void {
  const { qos, messageId } = publish;
  if (qos === 1) {
    conn.write(encodeAck('puback', messageId, 0, conn.v5));
  } else if (qos === 2) {
    conn.session!.holdForPubrel(messageId);
    conn.write(encodeAck('pubrec', messageId, 0, conn.v5));
  }
}
