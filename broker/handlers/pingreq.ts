// PINGREQ → PINGRESP. [MQTT-3.12.4-1]
import type { Connection } from '../connection.ts';
import { PINGRESP } from '../protocol/codec.ts';

export function handlePingreq(conn: Connection): undefined {
  conn.write(PINGRESP);
  return undefined;
}
