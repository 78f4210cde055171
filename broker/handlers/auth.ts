// AUTH (v5 enhanced authentication). No authentication method is offered by this broker, so CONNECT
// with a method is refused (0x8C) and any AUTH packet afterwards is a protocol error. [MQTT-4.12.0-1]
import type { Connection } from '../connection.ts';
import type { Packet } from '../protocol/codec.ts';
import { RC } from '../protocol/reason-codes.ts';

export function handleAuth(conn: Connection, _packet: Extract<Packet, { cmd: 'auth' }>): undefined {
  conn.close(RC.PROTOCOL_ERROR, 'unexpected-auth', 'enhanced authentication is not supported');
  return undefined;
}
