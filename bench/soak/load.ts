// The soak's load: MQTT.js clients doing what fleets of real clients do, all at once and for as
// long as the soak runs. Half the clients speak 3.1.1, half 5.0; nobody limits what it keeps in
// flight (MQTT.js does not), and the 3.1.1 QoS 2 publisher bursts past the broker's maxInflight.
//
//   churn        25 connections a second living 1–4 s: clean and persistent (a pool of client ids),
//                subscribing to fan-out, retained and toggled topics, publishing, then leaving by
//                DISCONNECT or by a dropped socket (will messages)
//   persistent   30 devices with persistent sessions, online 10–20 s, offline 10–30 s: their queues
//                fill past maxQueuedMessages while away and drain when back (QoS 1 and 2)
//   slow         4 consumers of 16 KiB messages that stop reading for 15 s out of every 20
//   publishers   ~90 msg/s to soak/fan/<k> at QoS 0/1 and a 3.1.1 QoS 2 burst of 100 every 2 s
//   retained     200 retained writes a second over 2,000 topics, 10% of them deletes
//   auth reload  the users file rewritten every 15 s (rotated users; soak/toggle/# allowed or not)
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SoakBroker } from './broker.ts';
import { soakUser } from './broker.ts';

export interface LoadStats {
  connects: number;
  connectFailures: number;
  /** Connections the broker closed (or that failed) while the client wanted to stay. */
  unexpectedCloses: number;
  published: number;
  received: number;
  authReloads: number;
}

export interface SoakLoad {
  stats: LoadStats;
  stop(): Promise<void>;
}

const payloads = Buffer.alloc(32 * 1024, 'soak');
const payload = (bytes: number): Buffer => payloads.subarray(0, bytes);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const between = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));

export function startSoakLoad(broker: SoakBroker): SoakLoad {
  const stats: LoadStats = { connects: 0, connectFailures: 0, unexpectedCloses: 0, published: 0, received: 0, authReloads: 0 };
  const open = new Set<MqttClient>();
  /** Clients on their way out by our choice: their close is not the broker's doing. */
  const leaving = new WeakSet<MqttClient>();
  const loops: Promise<void>[] = [];
  let stopping = false;
  const abort = new AbortController();
  /** A pause that ends early when the soak stops. */
  const nap = (ms: number): Promise<void> => sleep(ms, undefined, { signal: abort.signal }).catch(() => undefined);

  /** A connected client; undefined when the broker refused it or the connection failed. */
  async function client(opts: IClientOptions, stayConnected = false): Promise<MqttClient | undefined> {
    try {
      const c = await mqtt.connectAsync({
        host: '127.0.0.1', port: broker.port, username: soakUser.username, password: soakUser.password,
        keepalive: 60, connectTimeout: 10_000, reconnectPeriod: stayConnected ? 1000 : 0, ...opts,
      });
      stats.connects++;
      open.add(c);
      c.on('error', () => undefined);
      c.on('message', () => stats.received++);
      c.on('close', () => {
        if (!stopping && !leaving.has(c)) stats.unexpectedCloses++;
        if (!stayConnected) open.delete(c);
      });
      if (stayConnected) c.on('connect', () => stats.connects++);
      return c;
    } catch {
      stats.connectFailures++;
      return undefined;
    }
  }

  /** Leaves by DISCONNECT, or (`abrupt`) by dropping the socket as a device losing power does. */
  async function leave(c: MqttClient, abrupt = false): Promise<void> {
    leaving.add(c);
    open.delete(c);
    if (abrupt) {
      c.stream.destroy();
      await c.endAsync(true);
    } else {
      await c.endAsync();
    }
  }

  function publish(c: MqttClient, topic: string, bytes: number, qos: 0 | 1 | 2, retain = false): void {
    stats.published++;
    c.publish(topic, payload(bytes), { qos, retain }, () => undefined);
  }

  function loop(every: number, body: () => Promise<void> | void): void {
    loops.push((async () => {
      while (!stopping) {
        await body();
        await nap(every);
      }
    })());
  }

  // ---- churn -----------------------------------------------------------------------------------
  let churnSeq = 0;
  const churning = new Set<Promise<void>>();
  async function churnClient(): Promise<void> {
    const n = churnSeq++;
    const v5 = n % 2 === 1;
    const persistent = n % 4 >= 2;
    const k = n % 10;
    const c = await client({
      protocolVersion: v5 ? 5 : 4,
      clientId: persistent ? `churn-${v5 ? 'v5' : 'v4'}-${n % 200}` : `churn-${n}`,
      clean: !persistent,
      ...(v5 && persistent ? { properties: { sessionExpiryInterval: 20 } } : {}),
      ...(n % 3 === 0 ? { will: { topic: `soak/will/${n}`, payload: payload(64), qos: 1, retain: false } } : {}),
    });
    if (c === undefined) return;
    try {
      await c.subscribeAsync({ [`soak/fan/${k}`]: { qos: pick([0, 1, 2] as const) }, [`soak/retained/${k}/#`]: { qos: 1 } });
      // Refused while the users file denies it (MQTT.js rejects a SUBACK with a failure code).
      await c.subscribeAsync('soak/toggle/#', { qos: 1 }).catch(() => undefined);
      for (let i = between(1, 5); i > 0; i--) publish(c, pick([`soak/fan/${k}`, `soak/toggle/${k}`]), between(16, 1024), pick([0, 1, 2] as const));
      await nap(between(1000, 4000));
    } catch {
      // closed under us: counted by the close handler
    }
    await leave(c, n % 4 === 1);
  }
  loop(200, () => {
    for (let i = 0; i < 5; i++) {
      const p = churnClient();
      churning.add(p);
      void p.finally(() => churning.delete(p));
    }
  });

  // ---- persistent sessions going offline and back ------------------------------------------------
  for (let i = 0; i < 30; i++) {
    loops.push((async () => {
      await nap(between(0, 10_000));
      while (!stopping) {
        const v5 = i % 2 === 1;
        const c = await client({ protocolVersion: v5 ? 5 : 4, clientId: `persist-${i}`, clean: false, ...(v5 ? { properties: { sessionExpiryInterval: 600 } } : {}) });
        if (c !== undefined) {
          try {
            await c.subscribeAsync('soak/fan/#', { qos: i % 3 === 0 ? 2 : 1 });
            await nap(between(10_000, 20_000));
          } catch {
            // closed under us
          }
          await leave(c);
        }
        await nap(between(10_000, 30_000));
      }
    })());
  }

  // ---- slow consumers ----------------------------------------------------------------------------
  for (let i = 0; i < 4; i++) {
    loops.push((async () => {
      const c = await client({ protocolVersion: i % 2 === 0 ? 4 : 5, clientId: `slow-${i}`, clean: true }, true);
      if (c === undefined) return;
      c.on('connect', () => void c.subscribeAsync('soak/bulk/#', { qos: i < 2 ? 0 : 1 }).catch(() => undefined));
      await c.subscribeAsync('soak/bulk/#', { qos: i < 2 ? 0 : 1 }).catch(() => undefined);
      await nap(i * 5000);
      while (!stopping) {
        await nap(5000);
        (c.stream as Socket).pause(); // busy elsewhere: the broker's write buffer to it fills
        await nap(15_000);
        (c.stream as Socket).resume();
      }
    })());
  }

  // ---- publishers --------------------------------------------------------------------------------
  void (async () => {
    const fan = await Promise.all([0, 1, 2].map((i) => client({ protocolVersion: i === 1 ? 5 : 4, clientId: `pub-${i}` }, true)));
    const burst = await client({ protocolVersion: 4, clientId: 'pub-qos2-burst' }, true);
    const bulk = await client({ protocolVersion: 5, clientId: 'pub-bulk' }, true);
    const retained = await client({ protocolVersion: 5, clientId: 'pub-retained' }, true);
    let seq = 0;
    loop(100, () => {
      for (const c of fan) {
        if (c === undefined || !c.connected) continue;
        for (let i = 0; i < 3; i++) publish(c, `soak/fan/${seq++ % 10}`, between(64, 1024), pick([0, 1] as const));
      }
    });
    loop(2000, () => {
      // 3.1.1 has no Receive Maximum: 100 QoS 2 in flight is legal and must not be disconnected.
      if (burst?.connected) for (let i = 0; i < 100; i++) publish(burst, 'soak/fan/9', 256, 2);
    });
    loop(50, () => {
      if (bulk?.connected) publish(bulk, `soak/bulk/${seq % 4}`, 16 * 1024, pick([0, 1] as const));
    });
    loop(50, () => {
      if (!retained?.connected) return;
      for (let i = 0; i < 10; i++) publish(retained, `soak/retained/${between(0, 19)}/${between(0, 99)}`, Math.random() < 0.1 ? 0 : between(16, 2048), pick([0, 1] as const), true);
    });
  })();

  // ---- auth reloads ------------------------------------------------------------------------------
  let generation = 1;
  loop(15_000, async () => {
    await broker.rewriteUsers(generation++);
    stats.authReloads++;
  });

  return {
    stats,
    async stop() {
      stopping = true;
      abort.abort();
      await Promise.all([...churning]);
      await Promise.all([...open].map((c) => c.endAsync(true)));
      await Promise.all(loops);
    },
  };
}
