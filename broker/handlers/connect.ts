// CONNECT → CONNACK, as an ordered list of steps: protocol, client id, properties, will,
// keepalive, the connection limit, authentication, re-authorization of a resumed session's
// subscriptions, the session limit, takeover, session, CONNACK, redelivery. (UTF-8 and property
// rules are checked before this handler runs: protocol/wire-rules.ts via dispatch.ts.)
import { randomBytes } from 'node:crypto';
import { allowAllHook } from '../auth/hook.ts';
import type { ConnectAttempt } from '../auth/hook.ts';
import type { Connection } from '../connection.ts';
import { encodePacket } from '../protocol/codec.ts';
import type { Packet, ProtocolVersion } from '../protocol/codec.ts';
import { RC, v3ConnackCode } from '../protocol/reason-codes.ts';
import type { WireViolation } from '../protocol/wire-rules.ts';
import { publishTopicProblem } from '../router/topics.ts';
import { authorizeStoredSubscriptions, dropDeniedSubscriptions, uncheckedSubscriptions } from '../session/reauthorize.ts';
import type { StoredSubscription, WillMessage } from '../session/session.ts';

type ConnectPacket = Extract<Packet, { cmd: 'connect' }>;
type ConnackProperties = NonNullable<Extract<Packet, { cmd: 'connack' }>['properties']>;

const NEVER_EXPIRES = 0xffffffff;

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
  const broker = conn.broker;
  const limits = broker.config.limits;
  conn.state = 'connecting';

  // 1. Protocol name and level. [MQTT-3.1.2-1, 3.1.2-2]
  const version = packet.protocolVersion ?? 4;
  conn.version = version;
  conn.v5 = version === 5;
  if ((version === 3) !== (packet.protocolId === 'MQIsdp')) {
    refuse(conn, RC.UNSUPPORTED_PROTOCOL_VERSION, 'protocol name does not match level');
    return;
  }

  // 2. Client identifier: assign one when empty. [MQTT-3.1.3-6, 3.1.3-7, 3.1.3-8]
  let clientId = packet.clientId;
  let assigned: string | undefined;
  if (clientId.length === 0) {
    if (version === 3 || (version === 4 && !packet.clean)) {
      refuse(conn, RC.CLIENT_IDENTIFIER_NOT_VALID, 'empty client id without clean session');
      return;
    }
    clientId = assigned = `enclave-${randomBytes(9).toString('base64url')}`;
  }
  conn.clientId = clientId;

  // 3. v5 properties. [MQTT-3.1.2.11]
  const props = packet.properties;
  if (props !== undefined) {
    if (props.receiveMaximum === 0 || props.maximumPacketSize === 0) {
      refuse(conn, RC.PROTOCOL_ERROR, 'receive maximum or maximum packet size is 0');
      return;
    }
    if (props.authenticationMethod !== undefined) {
      refuse(conn, RC.BAD_AUTHENTICATION_METHOD, 'enhanced authentication is not supported');
      return;
    }
    conn.clientReceiveMaximum = props.receiveMaximum ?? 65535;
    conn.clientMaxPacketSize = props.maximumPacketSize ?? Infinity;
    conn.clientTopicAliasMaximum = props.topicAliasMaximum ?? 0;
  }

  // 4. Will. [MQTT-3.1.2-9 .. 3.1.2-15]
  let will: WillMessage | undefined;
  if (packet.will !== undefined) {
    const w = packet.will;
    const problem = publishTopicProblem(w.topic, limits) ?? (w.topic.startsWith('$') ? 'will topic starts with $' : undefined);
    if (problem !== undefined) {
      refuse(conn, RC.TOPIC_NAME_INVALID, `will: ${problem}`);
      return;
    }
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
    will = {
      topic: w.topic,
      payload: Buffer.isBuffer(w.payload) ? w.payload : Buffer.from(w.payload),
      qos: w.qos ?? 0,
      retain: w.retain ?? false,
      delaySeconds: wp?.willDelayInterval ?? 0,
      properties: forwarded !== undefined && Object.keys(forwarded).length > 0 ? forwarded : undefined,
      expirySeconds: wp?.messageExpiryInterval ?? 0,
    };
  }

  // 5. Keepalive: v5 clients are told the server's value; v3 clients above the limit are refused.
  let keepalive = packet.keepalive ?? 0;
  let serverKeepAlive: number | undefined;
  if (limits.maxKeepaliveSeconds > 0 && (keepalive > limits.maxKeepaliveSeconds || (keepalive === 0 && conn.v5))) {
    if (conn.v5) {
      keepalive = serverKeepAlive = limits.maxKeepaliveSeconds; // [MQTT-3.2.2-21]
    } else if (keepalive > limits.maxKeepaliveSeconds) {
      refuse(conn, RC.CLIENT_IDENTIFIER_NOT_VALID, `keepalive ${keepalive}s above the limit ${limits.maxKeepaliveSeconds}s`);
      return;
    }
  }

  // 6. The connection limit, before authentication: once it is reached, a client must not be able
  // to make the broker spend CPU on a password hash. A takeover does not add a connection.
  if (broker.connectedCount >= limits.maxConnections && !broker.isConnected(clientId)) {
    refuse(conn, RC.SERVER_BUSY, 'max connections reached');
    return;
  }

  // 7. Authentication: anonymous on a listener that allows it, otherwise the hook.
  const attempt: ConnectAttempt = {
    clientId, username: packet.username, password: packet.password, peerHost: conn.peerHost,
    listener: conn.listener.name, protocolVersion: version, certificate: conn.certificate,
  };
  const anonymous = packet.username === undefined && packet.password === undefined;
  if (anonymous && conn.listener.allowAnonymous) {
    conn.client = { attempt: withoutPassword(attempt), superuser: false, acl: undefined };
    conn.authorizeAll = broker.authorizesEverything;
  } else {
    let result;
    try {
      result = await broker.authHook.authenticate(attempt);
    } catch (err) {
      broker.log.error({ err, clientId }, 'authentication hook failed');
      result = { outcome: 'deny', reason: 'unavailable', source: undefined } as const;
    }
    if (conn.isClosed()) return;
    broker.metrics.authDecisions.inc({ action: 'connect', result: result.outcome });
    if (result.outcome === 'deny') {
      const code = result.reason === 'bad-credentials' ? RC.BAD_USERNAME_OR_PASSWORD
        : result.reason === 'unavailable' ? RC.SERVER_UNAVAILABLE : RC.NOT_AUTHORIZED;
      refuse(conn, code, `authentication denied by ${result.source ?? 'chain'}`);
      return;
    }
    // An identity the source established (x509) replaces the CONNECT username for every later check.
    const identified = result.identity === undefined ? attempt : { ...attempt, username: result.identity };
    conn.client = { attempt: withoutPassword(identified), superuser: result.superuser, acl: result.acl };
    conn.authorizeAll = result.superuser || (broker.authorizesEverything && (result.acl === undefined || broker.authHook === allowAllHook));
    if (result.expiresAt !== undefined) conn.expireAt(result.expiresAt);
  }

  // 8. A resumed session keeps only the subscriptions the current ACL still allows, and nothing is
  // delivered before they are checked (docs/hostile-inputs.md #32: the ACL may have changed, or another
  // user may own this client id now). The loop ends on a synchronous look that finds nothing
  // unchecked, so no subscription can be added between the last check and openSession() below.
  const cleanStart = packet.clean ?? true;
  const verdicts = cleanStart || conn.authorizeAll ? undefined : new Map<StoredSubscription, boolean>();
  for (let todo = uncheckedSubscriptions(conn, verdicts); todo.length > 0; todo = uncheckedSubscriptions(conn, verdicts)) {
    await authorizeStoredSubscriptions(conn, todo, verdicts!);
    if (conn.isClosed()) return;
  }

  // 9. Limits, checked synchronously right before the session is opened so concurrent CONNECTs
  // cannot overshoot them. A new persistent session needs room; resuming or replacing one does not.
  if (broker.connectedCount >= limits.maxConnections && !broker.isConnected(clientId)) {
    refuse(conn, RC.SERVER_BUSY, 'max connections reached');
    return;
  }
  let sessionExpiry = conn.v5 ? (props?.sessionExpiryInterval ?? 0) : cleanStart ? 0 : NEVER_EXPIRES;
  const capped = Math.min(sessionExpiry, limits.maxSessionExpirySeconds);
  const expiryCapped = conn.v5 && capped !== sessionExpiry;
  sessionExpiry = capped;
  if (sessionExpiry > 0 && !broker.hasPersistentSession(clientId) && broker.persistentSessionCount >= limits.maxSessions) {
    refuse(conn, RC.QUOTA_EXCEEDED, `max sessions (${limits.maxSessions}) reached`); // v3.1.1: 3 server unavailable
    return;
  }

  // 10. Takeover of an existing connection and the session. [MQTT-3.1.4-3, 3.1.2-4, 3.1.2-5]
  const { session, present } = broker.openSession(conn, cleanStart);
  if (present && verdicts !== undefined) dropDeniedSubscriptions(conn, session, verdicts);
  broker.setSessionExpiry(session, sessionExpiry);
  session.will = will;

  // 11. CONNACK.
  let connack: Packet;
  if (conn.v5) {
    const properties: ConnackProperties = {
      receiveMaximum: limits.maxInflight,
      maximumPacketSize: limits.maxPacketSize,
      topicAliasMaximum: limits.topicAliasMaximum,
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      sharedSubscriptionAvailable: true,
    };
    if (assigned !== undefined) properties.assignedClientIdentifier = assigned;
    if (serverKeepAlive !== undefined) properties.serverKeepAlive = serverKeepAlive;
    if (expiryCapped) properties.sessionExpiryInterval = sessionExpiry;
    connack = { cmd: 'connack', sessionPresent: present, reasonCode: RC.SUCCESS, properties };
  } else {
    connack = { cmd: 'connack', sessionPresent: present, returnCode: 0 };
  }
  conn.state = 'connected';
  conn.write(encodePacket(connack, conn.version));
  conn.startKeepalive(keepalive);
  broker.log.debug({ clientId, peer: conn.peerHost, listener: conn.listener.name, version, sessionPresent: present }, 'client connected');

  // 12. Resume: in-flight messages again with DUP, then the queue. [MQTT-4.4.0-1]
  session.attach(conn, (id) => encodePacket({ cmd: 'pubrel', messageId: id }, conn.version));
}

function withoutPassword(a: ConnectAttempt): Omit<ConnectAttempt, 'password'> {
  return {
    clientId: a.clientId, username: a.username, peerHost: a.peerHost, listener: a.listener,
    protocolVersion: a.protocolVersion, certificate: a.certificate,
  };
}
