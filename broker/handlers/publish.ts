// PUBLISH from a client: topic alias, validation, authorization, routing, then PUBACK/PUBREC.
// QoS 2 is delivered once on PUBLISH and its packet id held until PUBREL, so a resent PUBLISH
// (DUP) is answered without routing it again. [MQTT-4.3.3, method A]
import type { Connection } from '../connection.ts';
import { encodeAck, encodePacket } from '../protocol/codec.ts';
import type { PublishPacket } from '../protocol/codec.ts';
import { RC } from '../protocol/reason-codes.ts';
import { newMessage } from '../router/message.ts';
import type { ForwardedProperties } from '../router/message.ts';
import { publishTopicProblem } from '../router/topics.ts';

type PublishProperties = NonNullable<PublishPacket['properties']>;

export function publishFromPacket(conn: Connection, packet: PublishPacket): Promise<void> | undefined {
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  return handlePublish(conn, packet.topic, payload, packet.qos, packet.retain, packet.dup, packet.messageId ?? 0, packet.properties);
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

export function handlePublish(
  conn: Connection, topicIn: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean, dup: boolean,
  messageId: number, props: PublishProperties | undefined,
): Promise<void> | undefined {
  const broker = conn.broker;
  broker.metrics.messagesIn++;
  conn.countPublish();
  let topic = topicIn;

  if (qos === 0 && dup) {
    conn.close(RC.PROTOCOL_ERROR, 'dup-on-qos0'); // [MQTT-3.3.1-2] (docs/hostile-inputs.md #30)
    return undefined;
  }
  if (props !== undefined) {
    if (props.subscriptionIdentifier !== undefined) {
      conn.close(RC.PROTOCOL_ERROR, 'subscription-id-from-client'); // [MQTT-3.3.4-6]
      return undefined;
    }
    const alias = props.topicAlias;
    if (alias !== undefined) {
      if (alias === 0 || alias > broker.config.limits.topicAliasMaximum) {
        conn.close(RC.TOPIC_ALIAS_INVALID, 'topic-alias-invalid'); // [MQTT-3.3.2-8, 3.3.2-9]
        return undefined;
      }
      if (topic.length === 0) {
        const known = conn.topicAliases.get(alias);
        if (known === undefined) {
          conn.close(RC.PROTOCOL_ERROR, 'topic-alias-unknown');
          return undefined;
        }
        topic = known;
      } else {
        conn.topicAliases.set(alias, topic);
      }
    }
  }
  const problem = publishTopicProblem(topic, broker.config.limits);
  if (problem !== undefined) {
    conn.close(RC.TOPIC_NAME_INVALID, 'topic-name-invalid', problem); // docs/hostile-inputs.md #7, #19, #20
    return undefined;
  }

  const session = conn.session!;
  if (qos === 2) {
    if (session.incomingQos2.has(messageId)) {
      conn.write(encodeAck('pubrec', messageId, 0, conn.v5)); // duplicate: already routed
      return undefined;
    }
    // v5 clients were told Receive Maximum = maxInflight in CONNACK: one more is a protocol
    // error. [MQTT-3.3.4-7] MQTT 3.1.1 has no Receive Maximum, so a client may hold every packet
    // id at once and cannot anticipate a limit: it is never disconnected for it. The id space
    // (65,535) is its bound, held in at most 8 KiB (session/packet-ids.ts).
    if (conn.v5 && session.incomingQos2.size >= broker.config.limits.maxInflight) {
      conn.close(RC.RECEIVE_MAXIMUM_EXCEEDED, 'receive-maximum-exceeded');
      return undefined;
    }
  }

  // Clients never publish into the broker's own `$` namespace. (docs/hostile-inputs.md #8, #24)
  if (topic.charCodeAt(0) === 0x24) {
    refusePublish(conn, qos, messageId, 'publish to $-topic');
    return undefined;
  }

  if (conn.authorizeAll) {
    accept(conn, topic, payload, qos, retain, messageId, props);
    return undefined;
  }
  const known = broker.authorizeKnown(conn, 'publish', topic, qos, retain);
  if (known !== undefined) {
    decided(conn, known, topic, payload, qos, retain, messageId, props);
    return undefined;
  }
  return broker.authorize(conn, 'publish', topic, qos, retain).then((allowed) => {
    if (conn.state === 'closed') return;
    decided(conn, allowed, topic, payload, qos, retain, messageId, props);
  });
}

function decided(
  conn: Connection, allowed: boolean, topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean,
  messageId: number, props: PublishProperties | undefined,
): void {
  if (allowed) {
    accept(conn, topic, payload, qos, retain, messageId, props);
  } else if (conn.broker.config.authorization.denyAction === 'disconnect') {
    conn.close(RC.NOT_AUTHORIZED, 'publish-not-authorized');
  } else {
    refusePublish(conn, qos, messageId, 'not authorized');
  }
}

/** QoS 0 dropped; QoS 1/2 answered with 0x87 (v5) or a plain ack (v3, which has no refusal). */
function refusePublish(conn: Connection, qos: 0 | 1 | 2, messageId: number, why: string): void {
  conn.broker.metrics.drop('not-authorized');
  conn.broker.log.debug({ clientId: conn.clientId, why }, 'publish refused');
  if (qos === 1) conn.write(encodeAck('puback', messageId, RC.NOT_AUTHORIZED, conn.v5));
  if (qos === 2) conn.write(encodeAck('pubrec', messageId, RC.NOT_AUTHORIZED, conn.v5));
}

function accept(
  conn: Connection, topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean, messageId: number,
  props: PublishProperties | undefined,
): void {
  const expiry = props?.messageExpiryInterval;
  const msg = newMessage(
    topic, payload, qos, retain, props === undefined ? undefined : forwarded(props),
    expiry === undefined ? 0 : Date.now() + expiry * 1000, conn.clientId, performance.now(),
  );
  conn.broker.route(msg, conn.authorizeAll ? undefined : conn.client);
  if (qos === 1) {
    conn.write(encodeAck('puback', messageId, 0, conn.v5));
  } else if (qos === 2) {
    conn.session!.incomingQos2.add(messageId);
    conn.write(encodeAck('pubrec', messageId, 0, conn.v5));
  }
}

export function encodeServerDisconnect(reasonCode: number): Buffer {
  return encodePacket({ cmd: 'disconnect', reasonCode }, 5);
}
