// Owns the slow consumer of the back-pressure tests: an MQTT.js subscriber that, while stalled,
// takes each message and acknowledges none, like a client busy processing (MQTT.js sends the
// PUBACK when handleMessage calls back, and reads nothing more until then).
import type { MqttClient } from 'mqtt';

export interface StallableSubscriber {
  c: MqttClient;
  /** Payloads in arrival order. */
  inbox: string[];
  stall: () => void;
  unstall: () => void;
}

/** Subscribes `c` (a persistent session) to `filter` at QoS 1. */
export async function stallableSubscriber(c: MqttClient, filter: string): Promise<StallableSubscriber> {
  const inbox: string[] = [];
  let gate: Promise<void> | undefined;
  let open = (): void => undefined;
  c.handleMessage = (packet, done) => {
    inbox.push(packet.payload.toString());
    if (gate === undefined) done();
    else void gate.then(() => done());
  };
  await c.subscribeAsync(filter, { qos: 1 });
  return {
    c, inbox,
    stall: () => {
      gate = new Promise((resolve) => (open = resolve));
    },
    unstall: () => {
      gate = undefined;
      open();
    },
  };
}
