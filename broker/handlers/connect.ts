// CONNECT → CONNACK, as an ordered list of steps (handleConnect): protocol, client id,
// properties, will, keepalive, the connection limit, authentication (connect-auth.ts),
// re-authorization of a resumed session's subscriptions, the limits, takeover and session,
// CONNACK, redelivery. Each step returns its value or a Refusal. (UTF-8 and property rules are
// checked before this handler runs: protocol/wire-rules.ts via dispatch.ts.)
import { randomBytes } from 'node:crypto';
import type { ConnectAttempt } from '../auth/hook.ts';
import type { Connection } from '../connection.ts';
import { encodePacket } from '../protocol/codec.ts';
import type { Packet, ProtocolVersion } from '../protocol/codec.ts';
import { RC, v3ConnackCode } from '../protocol/reason-codes.ts';
import type { WireViolation } from '../protocol/wire-rules.ts';
import { publishTopicProblem } from '../router/topics.ts';
import { keepWillInCluster } from '../session/mirror.ts';
import { authorizeStoredSubscriptions, dropDeniedSubscriptions, uncheckedSubscriptions } from '../session/reauthorize.ts';
import type { SubscriptionVerdicts } from '../session/reauthorize.ts';
import { NEVER_EXPIRES } from '../session/session.ts';
import type { StoredSubscription, WillMessage } from '../session/session.ts';
import { authenticateConnect, refusal } from './connect-auth.ts';
import type { Refusal } from './connect-auth.ts';

type ConnectPacket = Extract<Packet, { cmd: 'connect' }>;
type ConnackProperties = NonNullable<Extract<Packet, { cmd: 'connack' }>['properties']>;

type Limits = Connection['broker']['config']['limits'];

function isRefusal(x: unknown): x is Refusal {
  return typeof x === 'object' && x !== null && (x as Partial<Refusal>).refused === true;
}

function refuse(conn: Connection, reasonCode: number, why: string): void {
  const packet: Packet = conn.v5
    ? { cmd: 'connack', sessionPresent: false, reasonCode }
    : { cmd: 'connack', sessionPresent: false, returnCode: v3ConnackCode(reasonCode) };
  conn.broker.log.info({ clientId: conn.clientId, peer: conn.peerHost, listener: conn.listener.name, reasonCode, why }, 'connection refused');
  conn.write(encodePacket(packet, conn.version));
  conn.close(RC.SUCCESS, `connack-refused:${why}`); // [MQTT-3.2.2-5] close after a refusing CONNACK
}

/**
 * A CONNECT that breaks a wire rule (ill-formed UTF-8, a repeated or misplaced v5 property):
 * v5 gets CONNACK 0x81/0x82 first [MQTT-4.13.1-1]; 3.1.1 has no return code for it, the
 * connection is just closed. [MQTT-1.5.4-1]
 */
export function refuseMalformedConnect(conn: Connection, version: ProtocolVersion, violation: WireViolation): void {
  conn.version = version;
  conn.v5 = version === 5;
  if (conn.v5) {
    refuse(conn, violation.reasonCode, violation.message);
    return;
  }
  conn.broker.log.info({ peer: conn.peerHost, listener: conn.listener.name, why: violation.message }, 'connection refused');
  conn.close(RC.SUCCESS, 'malformed-connect');
}

export async function handleConnect(conn: Connection, packet: ConnectPacket): Promise<void> {
  const limits = conn.broker.config.limits;
  conn.state = 'connecting';
  const version = packet.protocolVersion ?? 4;
  conn.version = version;
  conn.v5 = version === 5;
  const protocol = protocolProblem(packet, version);
  if (protocol !== undefined) return refuseWith(conn, protocol);
  const id = clientIdOf(packet, version);
  if (isRefusal(id)) return refuseWith(conn, id);
  conn.clientId = id.clientId;
  const props = clientProperties(conn, packet);
  if (props !== undefined) return refuseWith(conn, props);
  const will = willOf(packet, limits);
  if (isRefusal(will)) return refuseWith(conn, will);
  const keepalive = keepaliveOf(packet, conn.v5, limits);
  if (isRefusal(keepalive)) return refuseWith(conn, keepalive);
  const room = connectionRoom(conn);
  if (room !== undefined) return refuseWith(conn, room);
  const denied = await authenticateConnect(conn, connectAttempt(conn, packet));
  if (conn.isClosed()) return undefined;
  if (denied !== undefined) return refuseWith(conn, denied);
  const cleanStart = packet.clean ?? true;
  const expiry = sessionExpiryOf(conn, packet, limits);
  // With replicas: the session is claimed cluster-wide and what another replica stored is loaded
  // here, before its subscriptions are checked like a local session's.
  const claiming = conn.broker.claimSession(conn, cleanStart, expiry.seconds);
  if (claiming !== undefined) {
    const unclaimed = await claiming;
    if (conn.isClosed()) return undefined;
    if (unclaimed !== undefined) return refuseWith(conn, unclaimed);
  }
  const verdicts = await checkResumedSubscriptions(conn, cleanStart);
  if (conn.isClosed()) return undefined;
  // Limits, checked synchronously right before the session is opened so concurrent CONNECTs
  // cannot overshoot them.
  const late = connectionRoom(conn) ?? sessionRoom(conn, expiry.seconds);
  if (late !== undefined) return refuseWith(conn, late);
  // Takeover of an existing connection and the session. [MQTT-3.1.4-3, 3.1.2-4, 3.1.2-5]
  const { session, present } = conn.broker.openSession(conn, cleanStart);
  if (present && verdicts !== undefined) dropDeniedSubscriptions(conn, session, verdicts);
  conn.broker.setSessionExpiry(session, expiry.seconds);
  session.will = will;
  // With replicas Redis keeps the will too, for the replica that adopts the session if this one crashes.
  keepWillInCluster(session, will, conn);
  sendConnack(conn, present, { assigned: id.assigned, serverKeepAlive: keepalive.serverKeepAlive, cappedExpiry: expiry.capped ? expiry.seconds : undefined });
  conn.startKeepalive(keepalive.seconds);
  conn.broker.log.debug({ clientId: conn.clientId, peer: conn.peerHost, listener: conn.listener.name, version, sessionPresent: present }, 'client connected');
  // Resume: in-flight messages again with DUP, then the queue. [MQTT-4.4.0-1]
  session.attach(conn, (messageId) => encodePacket({ cmd: 'pubrel', messageId }, conn.version));
  return undefined;
}

function refuseWith(conn: Connection, r: Refusal): undefined {
  refuse(conn, r.code, r.why);
  return undefined;
}

/** Protocol name and level agree. [MQTT-3.1.2-1, 3.1.2-2] */
function protocolProblem(packet: ConnectPacket, version: ProtocolVersion): Refusal | undefined {
  if ((version === 3) === (packet.protocolId === 'MQIsdp')) return undefined;
  return refusal(RC.UNSUPPORTED_PROTOCOL_VERSION, 'protocol name does not match level');
}

/** The client identifier, assigned when empty. [MQTT-3.1.3-6, 3.1.3-7, 3.1.3-8] */
function clientIdOf(packet: ConnectPacket, version: ProtocolVersion): { clientId: string; assigned: string | undefined } | Refusal {
  if (packet.clientId.length > 0) return { clientId: packet.clientId, assigned: undefined };
  if (version === 3 || (version === 4 && !packet.clean)) {
    return refusal(RC.CLIENT_IDENTIFIER_NOT_VALID, 'empty client id without clean session');
  }
  const assigned = `enclave-${randomBytes(9).toString('base64url')}`;
  return { clientId: assigned, assigned };
}

/** v5 properties that shape what the broker sends this client. [MQTT-3.1.2.11] */
function clientProperties(conn: Connection, packet: ConnectPacket): Refusal | undefined {
  const props = packet.properties;
  if (props === undefined) return undefined;
  if (props.receiveMaximum === 0 || props.maximumPacketSize === 0) {
    return refusal(RC.PROTOCOL_ERROR, 'receive maximum or maximum packet size is 0');
  }
  if (props.authenticationMethod !== undefined) {
    return refusal(RC.BAD_AUTHENTICATION_METHOD, 'enhanced authentication is not supported');
  }
  conn.clientReceiveMaximum = props.receiveMaximum ?? 65535;
  conn.clientMaxPacketSize = props.maximumPacketSize ?? Infinity;
  conn.clientTopicAliasMaximum = props.topicAliasMaximum ?? 0;
  return undefined;
}

/** The will, with the v5 properties forwarded to its subscribers. [MQTT-3.1.2-9 .. 3.1.2-15] */
function willOf(packet: ConnectPacket, limits: Limits): WillMessage | undefined | Refusal {
  const w = packet.will;
  if (w === undefined) return undefined;
  const problem = publishTopicProblem(w.topic, limits) ?? (w.topic.startsWith('$') ? 'will topic starts with $' : undefined);
  if (problem !== undefined) return refusal(RC.TOPIC_NAME_INVALID, `will: ${problem}`);
  const wp = w.properties;
  const forwarded = wp === undefined ? undefined : {
    payloadFormatIndicator: wp.payloadFormatIndicator,
    contentType: wp.contentType,
    responseTopic: wp.responseTopic,
    correlationData: wp.correlationData,
    userProperties: wp.userProperties,
  };
  if (forwarded !== undefined) {
    for (const k of Object.keys(forwarded) as (keyof typeof forwarded)[]) if (forwarded[k] === undefined) delete forwarded[k];
  }
  return {
    topic: w.topic,
    payload: Buffer.isBuffer(w.payload) ? w.payload : Buffer.from(w.payload),
    qos: w.qos ?? 0,
    retain: w.retain ?? false,
    delaySeconds: wp?.willDelayInterval ?? 0,
    properties: forwarded !== undefined && Object.keys(forwarded).length > 0 ? forwarded : undefined,
    expirySeconds: wp?.messageExpiryInterval ?? 0,
  };
}

/** Keepalive: v5 clients are told the server's value; v3 clients above the limit are refused. */
function keepaliveOf(packet: ConnectPacket, v5: boolean, limits: Limits): { seconds: number; serverKeepAlive: number | undefined } | Refusal {
  const keepalive = packet.keepalive ?? 0;
  const max = limits.maxKeepaliveSeconds;
  if (max === 0 || !(keepalive > max || (keepalive === 0 && v5))) return { seconds: keepalive, serverKeepAlive: undefined };
  if (v5) return { seconds: max, serverKeepAlive: max }; // [MQTT-3.2.2-21]
  return refusal(RC.CLIENT_IDENTIFIER_NOT_VALID, `keepalive ${keepalive}s above the limit ${max}s`);
}

/**
 * The connection limit. Checked before authentication too: once it is reached, a client must
 * not be able to make the broker spend CPU on a password hash. A takeover does not add a connection.
 */
function connectionRoom(conn: Connection): Refusal | undefined {
  const broker = conn.broker;
  if (broker.connectedCount < broker.config.limits.maxConnections || broker.isConnected(conn.clientId)) return undefined;
  return refusal(RC.SERVER_BUSY, 'max connections reached');
}

function connectAttempt(conn: Connection, packet: ConnectPacket): ConnectAttempt {
  return {
    clientId: conn.clientId, username: packet.username, password: packet.password, peerHost: conn.peerHost,
    listener: conn.listener.name, protocolVersion: conn.version, certificate: conn.certificate,
  };
}

/**
 * A resumed session keeps only the subscriptions the current ACL still allows, and nothing is
 * delivered before they are checked (docs/hostile-inputs.md #32: the ACL may have changed, or another
 * user may own this client id now). The loop ends on a synchronous look that finds nothing
 * unchecked, so no subscription can be added between the last check and openSession().
 */
async function checkResumedSubscriptions(conn: Connection, cleanStart: boolean): Promise<SubscriptionVerdicts | undefined> {
  const verdicts = cleanStart || conn.authorizeAll ? undefined : new Map<StoredSubscription, boolean>();
  for (let todo = uncheckedSubscriptions(conn, verdicts); todo.length > 0; todo = uncheckedSubscriptions(conn, verdicts)) {
    await authorizeStoredSubscriptions(conn, todo, verdicts!);
    if (conn.isClosed()) return undefined;
  }
  return verdicts;
}

/** The session expiry asked for, capped at `maxSessionExpirySeconds` (v5 is told the cap). */
function sessionExpiryOf(conn: Connection, packet: ConnectPacket, limits: Limits): { seconds: number; capped: boolean } {
  const asked = conn.v5 ? (packet.properties?.sessionExpiryInterval ?? 0) : (packet.clean ?? true) ? 0 : NEVER_EXPIRES;
  const seconds = Math.min(asked, limits.maxSessionExpirySeconds);
  return { seconds, capped: conn.v5 && seconds !== asked };
}

/** A new persistent session needs room; resuming or replacing one does not. */
function sessionRoom(conn: Connection, expirySeconds: number): Refusal | undefined {
  const broker = conn.broker;
  const max = broker.config.limits.maxSessions;
  if (expirySeconds === 0 || broker.hasPersistentSession(conn.clientId) || broker.persistentSessionCount < max) return undefined;
  return refusal(RC.QUOTA_EXCEEDED, `max sessions (${max}) reached`); // v3.1.1: 3 server unavailable
}

interface ConnackExtras {
  assigned: string | undefined;
  serverKeepAlive: number | undefined;
  cappedExpiry: number | undefined;
}

function sendConnack(conn: Connection, present: boolean, extras: ConnackExtras): void {
  let connack: Packet;
  if (conn.v5) {
    const limits = conn.broker.config.limits;
    const properties: ConnackProperties = {
      receiveMaximum: limits.maxInflight,
      maximumPacketSize: limits.maxPacketSize,
      topicAliasMaximum: limits.topicAliasMaximum,
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      sharedSubscriptionAvailable: true,
    };
    if (extras.assigned !== undefined) properties.assignedClientIdentifier = extras.assigned;
    if (extras.serverKeepAlive !== undefined) properties.serverKeepAlive = extras.serverKeepAlive;
    if (extras.cappedExpiry !== undefined) properties.sessionExpiryInterval = extras.cappedExpiry;
    connack = { cmd: 'connack', sessionPresent: present, reasonCode: RC.SUCCESS, properties };
  } else {
    connack = { cmd: 'connack', sessionPresent: present, returnCode: 0 };
  }
  conn.state = 'connected';
  conn.write(encodePacket(connack, conn.version));
}
