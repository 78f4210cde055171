// UNSUBSCRIBE → UNSUBACK. [MQTT-3.10, 3.11]
import type { Connection } from '../connection.ts';
import { encodePacket } from '../protocol/codec.ts';
import type { Packet } from '../protocol/codec.ts';
import { RC } from '../protocol/reason-codes.ts';

export function handleUnsubscribe(conn: Connection, packet: Extract<Packet, { cmd: 'unsubscribe' }>): undefined {
  if (packet.unsubscriptions.length === 0) {
    conn.close(RC.PROTOCOL_ERROR, 'unsubscribe-without-filters'); // [MQTT-3.10.3-2]
    return undefined;
  }
  const session = conn.session!;
  const codes = packet.unsubscriptions.map((key) => (conn.broker.unsubscribe(session, key) ? RC.SUCCESS : RC.NO_SUBSCRIPTION_EXISTED));
  const reply: Packet = conn.v5
    ? { cmd: 'unsuback', messageId: packet.messageId ?? 0, granted: codes }
    : { cmd: 'unsuback', messageId: packet.messageId ?? 0, granted: [] };
  conn.write(encodePacket(reply, conn.version));
  return undefined;
}
