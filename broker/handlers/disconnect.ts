// DISCONNECT from the client: clean (no will) unless v5 reason 0x04; v5 may update the session
// expiry, but not from 0 to non-zero. [MQTT-3.14.4-3, 3.14.2-2]
import type { Connection } from '../connection.ts';
import type { Packet } from '../protocol/codec.ts';
import { RC } from '../protocol/reason-codes.ts';

export function handleDisconnect(conn: Connection, packet: Extract<Packet, { cmd: 'disconnect' }>): undefined {
  const session = conn.session;
  const expiry = packet.properties?.sessionExpiryInterval;
  if (conn.v5 && expiry !== undefined && session !== undefined) {
    if (session.expirySeconds === 0 && expiry !== 0) {
      conn.close(RC.PROTOCOL_ERROR, 'session-expiry-after-zero');
      return undefined;
    }
    conn.broker.setSessionExpiry(session, Math.min(expiry, conn.broker.config.limits.maxSessionExpirySeconds));
  }
  conn.cleanDisconnect = !(conn.v5 && packet.reasonCode === RC.DISCONNECT_WITH_WILL);
  conn.close(RC.SUCCESS, 'client-disconnect');
  return undefined;
}
