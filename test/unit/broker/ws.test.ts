// The WebSocket listener refuses an upgrade that does not offer the MQTT subprotocol (HTTP 400)
// and carries MQTT for one that does. Real HTTP upgrades with the `ws` client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mqttSubprotocol } from '../../../broker/listeners/ws.ts';
import { connect311, startTestBroker } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

let tb: TestBroker;
let url: string;
beforeAll(async () => {
  tb = await startTestBroker((c) => {
    c.listeners.push({ name: 'ws', protocol: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt', allowAnonymous: true });
  });
  url = `ws://127.0.0.1:${tb.broker.addresses().find((a) => a.name === 'ws')!.port}/mqtt`;
});
afterAll(async () => {
  await tb.stop();
});

type Upgrade = { refused: { status: number; body: string } } | { open: WebSocket };

function upgrade(protocols: string[] | undefined): Promise<Upgrade> {
  const ws = new WebSocket(url, protocols);
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ open: ws }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        req.destroy();
        resolve({ refused: { status: res.statusCode ?? 0, body } });
      });
    });
  });
}

describe('WebSocket subprotocol', () => {
  it.each([
    ['no subprotocol offered', undefined],
    ['only other subprotocols offered', ['wamp', 'graphql-ws']],
  ])('%s → HTTP 400, no WebSocket', async (_name, protocols) => {
    const r = await upgrade(protocols);
    expect(r).toEqual({ refused: { status: 400, body: expect.stringContaining('subprotocol "mqtt"') as unknown } });
    expect(tb.broker.connectionCount).toBe(0);
  });

  it.each([
    [['mqtt'], 'mqtt'],
    [['wamp', 'mqttv3.1'], 'mqttv3.1'],
    [['mqttv3.1', 'mqtt'], 'mqtt'],
  ])('offered %j → selected %s, and CONNECT gets CONNACK', async (protocols, selected) => {
    const r = await upgrade(protocols);
    if (!('open' in r)) throw new Error(`refused: ${JSON.stringify(r.refused)}`);
    const ws = r.open;
    expect(ws.protocol).toBe(selected);
    const reply = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString('hex'))));
    ws.send(connect311(`ws-${selected}`));
    expect(await reply).toBe('20020000');
    ws.close();
  });

  it.each([
    [undefined, undefined],
    ['', undefined],
    ['mqtt', 'mqtt'],
    ['wamp, mqtt', 'mqtt'],
    ['mqttv3.1', 'mqttv3.1'],
    ['MQTT', undefined], // subprotocol names are case-sensitive (RFC 6455 §4.1)
    ['mqtt5', undefined],
  ])('mqttSubprotocol(%j) = %j', (header, expected) => {
    expect(mqttSubprotocol(header)).toBe(expected);
  });
});
