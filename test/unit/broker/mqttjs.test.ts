// MQTT.js v3.1.1 and v5 against the broker: the session, will, retain, shared, alias, expiry and
// flow-control behaviours that need a real client library on the other end.
import mqtt from 'mqtt';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, connect311, publish, sleep, startTestBroker, subscribe } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

let tb: TestBroker;
const clients: MqttClient[] = [];
beforeAll(async () => {
  tb = await startTestBroker((c) => {
    c.limits.maxKeepaliveSeconds = 60;
  });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await tb.stop();
});

async function client(opts: IClientOptions): Promise<MqttClient> {
  const c = await mqtt.connectAsync({ host: '127.0.0.1', port: tb.port, reconnectPeriod: 0, ...opts });
  clients.push(c);
  return c;
}

/** Collects messages; `next()` resolves with the next one. */
function inbox(c: MqttClient): { next(): Promise<IPublishPacket>; all: IPublishPacket[] } {
  const all: IPublishPacket[] = [];
  const waiters: ((p: IPublishPacket) => void)[] = [];
  let read = 0;
  c.on('message', (_t, _p, packet) => {
    all.push(packet);
    const w = waiters.shift();
    if (w !== undefined) w(all[read++]!);
  });
  return {
    all,
    next: () => (read < all.length ? Promise.resolve(all[read++]!) : new Promise((r) => waiters.push(r))),
  };
}

describe('MQTT.js v3.1.1', () => {
  it('QoS 0/1/2 round trip with wildcards', async () => {
    const sub = await client({ protocolVersion: 4, clientId: 'js4-sub' });
    const box = inbox(sub);
    await sub.subscribeAsync({ 'js4/+/x': { qos: 2 }, 'js4/#': { qos: 1 } });
    const pub = await client({ protocolVersion: 4 });
    await pub.publishAsync('js4/a/x', 'two', { qos: 2 });
    const got = [await box.next(), await box.next()];
    expect(got.map((p) => [p.topic, String(p.payload)])).toEqual([['js4/a/x', 'two'], ['js4/a/x', 'two']]);
    expect(got.map((p) => p.qos).sort()).toEqual([1, 2]);
  });

  it('persistent session: QoS 1 queued while offline, delivered on reconnect with session present', async () => {
    const a = await client({ protocolVersion: 4, clientId: 'js4-persist', clean: false });
    await a.subscribeAsync('js4p/t', { qos: 1 });
    await a.endAsync();
    const pub = await client({ protocolVersion: 4 });
    await pub.publishAsync('js4p/t', 'while-away', { qos: 1 });
    const b = mqtt.connect({ host: '127.0.0.1', port: tb.port, protocolVersion: 4, clientId: 'js4-persist', clean: false, reconnectPeriod: 0 });
    clients.push(b);
    const box = inbox(b);
    const connack = await new Promise<{ sessionPresent: boolean }>((r) => b.once('connect', r));
    expect(connack.sessionPresent).toBe(true);
    expect(String((await box.next()).payload)).toBe('while-away');
  });

  it('takeover: a second connection with the same client id closes the first', async () => {
    const first = await client({ protocolVersion: 4, clientId: 'js4-take' });
    const closed = new Promise<void>((r) => first.once('close', () => r()));
    await client({ protocolVersion: 4, clientId: 'js4-take' });
    await closed;
    expect(tb.broker.isConnected('js4-take')).toBe(true);
  });
});

describe('MQTT.js v5', () => {
  it('retain handling 0/1/2 and retain-as-published', async () => {
    const pub = await client({ protocolVersion: 5 });
    await pub.publishAsync('js5r/t', 'kept', { qos: 1, retain: true });
    const s = await client({ protocolVersion: 5, clientId: 'js5-rh' });
    const box = inbox(s);
    await s.subscribeAsync('js5r/t', { qos: 1, rh: 2 });
    await s.subscribeAsync('js5r/+', { qos: 1, rh: 0, rap: true });
    const first = await box.next();
    expect([first.topic, first.retain]).toEqual(['js5r/t', true]);
    await s.subscribeAsync('js5r/+', { qos: 1, rh: 1, rap: true }); // exists already → no replay
    await pub.publishAsync('js5r/t', 'live', { qos: 1, retain: true });
    const live = [await box.next(), await box.next()];
    // rap=true keeps the flag; the rh=2 subscription (rap false) clears it
    expect(live.map((p) => `${String(p.payload)}:${p.retain}`).sort()).toEqual(['live:false', 'live:true']);
    await sleep(50);
    expect(box.all).toHaveLength(3);
  });

  it('no-local, subscription identifiers, user properties and correlation data pass through', async () => {
    const c = await client({ protocolVersion: 5, clientId: 'js5-nl' });
    const box = inbox(c);
    await c.subscribeAsync('js5n/t', { qos: 0, nl: true, properties: { subscriptionIdentifier: 7 } } as never);
    await c.subscribeAsync('js5n/#', { qos: 0, properties: { subscriptionIdentifier: 9 } } as never);
    await c.publishAsync('js5n/t', 'self', { properties: { userProperties: { a: '1' }, correlationData: Buffer.from('cd'), contentType: 'text/plain', responseTopic: 'js5n/reply' } });
    const m = await box.next();
    expect(m.properties?.subscriptionIdentifier).toBe(9); // only the non-no-local subscription
    expect(m.properties?.userProperties).toEqual({ a: '1' });
    expect(m.properties?.correlationData?.toString()).toBe('cd');
    expect(m.properties?.contentType).toBe('text/plain');
    expect(m.properties?.responseTopic).toBe('js5n/reply');
    await sleep(50);
    expect(box.all).toHaveLength(1);
  });

  it('shared subscriptions deliver round-robin to one member each', async () => {
    const a = await client({ protocolVersion: 5, clientId: 'js5-sh-a' });
    const b = await client({ protocolVersion: 5, clientId: 'js5-sh-b' });
    const boxA = inbox(a);
    const boxB = inbox(b);
    await a.subscribeAsync('$share/g/js5s/#', { qos: 1 });
    await b.subscribeAsync('$share/g/js5s/#', { qos: 1 });
    const pub = await client({ protocolVersion: 5 });
    for (let i = 0; i < 6; i++) await pub.publishAsync('js5s/x', String(i), { qos: 1 });
    await sleep(100);
    expect(boxA.all.length).toBe(3);
    expect(boxB.all.length).toBe(3);
  });

  it('inbound topic alias: the alias stands for the topic afterwards', async () => {
    const sub = await client({ protocolVersion: 5 });
    const box = inbox(sub);
    await sub.subscribeAsync('js5a/long/topic', { qos: 0 });
    const pub = await client({ protocolVersion: 5 });
    await pub.publishAsync('js5a/long/topic', 'one', { properties: { topicAlias: 3 } });
    await pub.publishAsync('', 'two', { properties: { topicAlias: 3 } });
    expect([String((await box.next()).payload), String((await box.next()).payload)]).toEqual(['one', 'two']);
  });

  it('outbound topic aliases: the first delivery sets the alias, later ones send only the alias', async () => {
    const raw = await RawClient.connect(tb.port);
    const props = Buffer.from([0x22, 0x00, 0x05]); // Topic Alias Maximum 5
    const id = Buffer.from('js5-out-alias');
    const body = Buffer.concat([Buffer.from('00044d5154540502003c', 'hex'), Buffer.from([props.length]), props, Buffer.from([0, id.length]), id]);
    raw.send(Buffer.concat([Buffer.from([0x10, body.length]), body]));
    expect((await raw.packet())![0]).toBe(0x20);
    raw.send(subscribe(1, 'alias/t', 0, true));
    expect(await raw.packetHex()).toBe('900400010000');
    raw.send(publish('alias/t', 'a', 0, 0, false, true));
    raw.send(publish('alias/t', 'b', 0, 0, false, true));
    // topic "alias/t" + properties [0x23 alias 1]; then an empty topic + the same alias
    expect(await raw.packetHex()).toBe('300e' + '0007' + Buffer.from('alias/t').toString('hex') + '03' + '230001' + '61');
    expect(await raw.packetHex()).toBe('3007' + '0000' + '03' + '230001' + '62');
    raw.end();
  });

  it('message expiry: an expired queued message is not delivered; the rest carry the time left', async () => {
    const s = await client({ protocolVersion: 5, clientId: 'js5-exp', clean: false, properties: { sessionExpiryInterval: 60 } });
    await s.subscribeAsync('js5e/t', { qos: 1 });
    await s.endAsync();
    const pub = await client({ protocolVersion: 5 });
    await pub.publishAsync('js5e/t', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await pub.publishAsync('js5e/t', 'long', { qos: 1, properties: { messageExpiryInterval: 100 } });
    await sleep(1100);
    const again = mqtt.connect({ host: '127.0.0.1', port: tb.port, protocolVersion: 5, clientId: 'js5-exp', clean: false, reconnectPeriod: 0, properties: { sessionExpiryInterval: 60 } });
    clients.push(again);
    const box = inbox(again);
    const m = await box.next();
    expect(String(m.payload)).toBe('long');
    expect(m.properties?.messageExpiryInterval).toBeLessThanOrEqual(99);
  });

  it('will delay: the will waits for its delay, then goes out', async () => {
    const watcher = await client({ protocolVersion: 5 });
    const box = inbox(watcher);
    await watcher.subscribeAsync('js5w/#', { qos: 0 });
    const will = { topic: 'js5w/gone', payload: Buffer.from('bye'), qos: 0 as const, retain: false, properties: { willDelayInterval: 1 } };
    const w = await client({ protocolVersion: 5, clientId: 'js5-will', will, properties: { sessionExpiryInterval: 10 } });
    w.stream.destroy();
    await sleep(300);
    expect(box.all).toHaveLength(0); // still within the delay
    const m = await box.next();
    expect(String(m.payload)).toBe('bye');
  });

  it('server keep alive is announced, and a silent client is disconnected with 0x8D', async () => {
    const quick = await startTestBroker((c) => {
      c.limits.maxKeepaliveSeconds = 1;
    });
    try {
      const raw = await RawClient.connect(quick.port);
      raw.send(connect311('ka', 0x02, 1));
      expect(await raw.packetHex()).toBe('20020000');
      expect(await raw.untilClosed()).toEqual([]); // nothing sent for 1.5 s → closed
      const c = await mqtt.connectAsync({ host: '127.0.0.1', port: quick.port, protocolVersion: 5, keepalive: 0, reconnectPeriod: 0 });
      const disconnect = new Promise<number | undefined>((r) => c.once('disconnect', (p) => r(p.reasonCode)));
      // MQTT.js adopts the server keep alive; stop its pings so the broker sees silence.
      (c as unknown as { _destroyKeepaliveManager?: () => void })._destroyKeepaliveManager?.();
      (c as unknown as { pingTimer?: { clear(): void } }).pingTimer?.clear();
      expect(await disconnect).toBe(0x8d);
      await c.endAsync(true);
    } finally {
      await quick.stop();
    }
  });

  it('graceful stop sends v5 clients DISCONNECT 0x8B', async () => {
    const own = await startTestBroker();
    const c = await mqtt.connectAsync({ host: '127.0.0.1', port: own.port, protocolVersion: 5, reconnectPeriod: 0 });
    const disconnect = new Promise<number | undefined>((r) => c.once('disconnect', (p) => r(p.reasonCode)));
    await own.stop();
    expect(await disconnect).toBe(0x8b);
    await c.endAsync(true);
  });

  it('receive maximum: at most that many QoS 1 messages in flight to the client', async () => {
    const raw = await RawClient.connect(tb.port);
    // v5 CONNECT with Receive Maximum 2
    const props = Buffer.from([0x21, 0x00, 0x02]);
    const id = Buffer.from('js5-rm');
    const body = Buffer.concat([Buffer.from('00044d5154540502003c', 'hex'), Buffer.from([props.length]), props, Buffer.from([0, id.length]), id]);
    raw.send(Buffer.concat([Buffer.from([0x10, body.length]), body]));
    expect((await raw.packet())![0]).toBe(0x20);
    raw.send(subscribe(1, 'js5rm/t', 1, true));
    expect(await raw.packetHex()).toBe('9004000100' + '01');
    const pub = await RawClient.connect(tb.port);
    pub.send(connect311('js5-rm-pub'));
    await pub.packet();
    for (let i = 1; i <= 4; i++) pub.send(publish('js5rm/t', String(i), 1, i));
    for (let i = 1; i <= 4; i++) await pub.packet();
    const first = [await raw.packet(), await raw.packet()];
    expect(first.map((p) => p![0])).toEqual([0x32, 0x32]);
    raw.send('c000'); // no third PUBLISH before this PINGRESP: the window is full
    expect(await raw.packetHex()).toBe('d000');
    raw.send(Buffer.from([0x40, 2, 0, first[0]!.readUInt16BE(11)]));
    const third = await raw.packet();
    expect(third![0]).toBe(0x32);
    raw.end();
    pub.end();
  });

  it('QoS 1 in flight is redelivered with DUP after a reconnect', async () => {
    const raw = await RawClient.connect(tb.port);
    raw.send(connect311('js4-dup', 0x00));
    await raw.packet();
    raw.send(subscribe(1, 'dup/t', 1));
    await raw.packet();
    const pub = await RawClient.connect(tb.port);
    pub.send(connect311('js4-dup-pub'));
    await pub.packet();
    pub.send(publish('dup/t', 'again', 1, 1));
    const first = (await raw.packet())!;
    expect(first[0]).toBe(0x32);
    raw.end(); // never acknowledged
    await raw.closedPromise;
    const back = await RawClient.connect(tb.port);
    back.send(connect311('js4-dup', 0x00));
    expect(await back.packetHex()).toBe('20020100');
    const again = (await back.packet())!;
    expect(again[0]).toBe(0x3a); // PUBLISH, DUP, QoS 1
    expect(again.subarray(1).toString('hex')).toBe(first.subarray(1).toString('hex'));
    back.end();
    pub.end();
  });

  it('$SYS topics are readable', async () => {
    const own = await startTestBroker();
    try {
      const c = await mqtt.connectAsync({ host: '127.0.0.1', port: own.port, protocolVersion: 4, reconnectPeriod: 0 });
      const box = inbox(c);
      own.broker.publishSysNow();
      await c.subscribeAsync('$SYS/broker/clients/connected', { qos: 0 });
      const m = await box.next();
      expect(m.topic).toBe('$SYS/broker/clients/connected');
      expect(Number(String(m.payload))).toBeGreaterThanOrEqual(0);
      await c.endAsync(true);
    } finally {
      await own.stop();
    }
  });
});
