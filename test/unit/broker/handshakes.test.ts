// TLS and WebSocket handshakes in progress (broker/listeners/handshakes.ts): raw sockets that open a
// TLS or WebSocket connection and never finish are closed at handshakeTimeoutMs; beyond
// maxPendingHandshakes (all listeners together) a new connection is closed at accept; plain TCP
// and finished handshakes are not touched. Assertions on what the sockets see: when they close,
// and the MQTT bytes a real client gets afterwards.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { RawClient, connect311, sleep, startTestBroker } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

const DEADLINE_MS = 1000;
const CAP = 4;

let tb: TestBroker;
let dir: string;

const port = (name: string): number => tb.broker.addresses().find((a) => a.name === name)!.port;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'broker-handshakes-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'tls.key', '-out', 'tls.crt', '-days', '2', '-subj', '/CN=localhost'], { cwd: dir, stdio: 'ignore' });
  const tls = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), clientAuth: 'none' as const };
  tb = await startTestBroker((c) => {
    c.listeners = [
      { name: 'tcp', protocol: 'mqtt', host: '127.0.0.1', port: 0, allowAnonymous: true },
      { name: 'mqtts', protocol: 'mqtts', host: '127.0.0.1', port: 0, allowAnonymous: true, tls },
      { name: 'ws', protocol: 'ws', host: '127.0.0.1', port: 0, allowAnonymous: true },
      { name: 'wss', protocol: 'wss', host: '127.0.0.1', port: 0, allowAnonymous: true, tls },
    ];
    c.limits.maxPendingHandshakes = CAP;
    c.limits.handshakeTimeoutMs = DEADLINE_MS;
  });
});

afterAll(async () => {
  await tb.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A TCP connection that sends `bytes` (maybe nothing) and then nothing more. */
interface Stalled {
  socket: Socket;
  /** Milliseconds from connect to the broker closing it. */
  closedAfter: Promise<number>;
  received(): number;
}

async function stalled(listenerPort: number, bytes: Buffer | string = ''): Promise<Stalled> {
  const socket = tcpConnect({ host: '127.0.0.1', port: listenerPort });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const opened = performance.now();
  let received = 0;
  socket.on('data', (d: Buffer) => (received += d.length));
  socket.on('error', () => undefined);
  if (bytes.length > 0) socket.write(bytes);
  const closedAfter = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - opened)));
  return { socket, closedAfter, received: () => received };
}

/** A finished TLS handshake that then sends nothing (the MQTT CONNECT deadline is the broker's next step). */
async function tlsIdle(listenerPort: number): Promise<Socket> {
  const s = tlsConnect({ host: '127.0.0.1', port: listenerPort, rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
  s.on('error', () => undefined);
  return s;
}

/** CONNECT over TLS; resolves with the first bytes the broker answers. */
async function mqttOverTls(listenerPort: number, clientId: string): Promise<{ answer: string; socket: Socket }> {
  const s = await tlsIdle(listenerPort);
  const answer = new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString('hex'))));
  s.write(connect311(clientId));
  return { answer: await answer, socket: s };
}

/** CONNECT over WebSocket (subprotocol mqtt); resolves with the broker's first message. */
async function mqttOverWs(url: string, clientId: string): Promise<{ answer: string; ws: WebSocket }> {
  const ws = new WebSocket(url, 'mqtt', { rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const answer = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString('hex'))));
  ws.send(connect311(clientId));
  return { answer: await answer, ws };
}

const halfClientHello = Buffer.from('160301020001', 'hex'); // a TLS record header promising 512 bytes, one byte of them
const halfUpgrade = 'GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'; // no blank line: never ends

describe('handshake deadline (handshakeTimeoutMs)', () => {
  it('TLS: a connection that never sends a ClientHello, or half of one, is closed at the deadline', async () => {
    const silent = await stalled(port('mqtts'));
    const half = await stalled(port('mqtts'), halfClientHello);
    for (const s of [silent, half]) {
      const after = await s.closedAfter;
      expect(after).toBeGreaterThan(DEADLINE_MS - 100);
      expect(after).toBeLessThan(DEADLINE_MS + 1500);
    }
    expect(silent.received()).toBe(0);
  });

  it('WebSocket: an upgrade request that never ends, and a WSS connection that finishes TLS but never sends its request, are closed at the deadline', async () => {
    const ws = await stalled(port('ws'), halfUpgrade);
    const wssOpened = performance.now();
    const wss = await tlsIdle(port('wss'));
    const wssClosedAfter = new Promise<number>((resolve) => wss.once('close', () => resolve(performance.now() - wssOpened)));
    for (const after of [await ws.closedAfter, await wssClosedAfter]) {
      expect(after).toBeGreaterThan(DEADLINE_MS - 100);
      expect(after).toBeLessThan(DEADLINE_MS + 1500);
    }
    expect(ws.received()).toBe(0); // no HTTP answer: the request never ended
  });

  it('a finished handshake is not cut by the deadline: TLS and WebSocket clients still talk MQTT after it', async () => {
    const t = await mqttOverTls(port('mqtts'), 'hs-tls-live');
    expect(t.answer).toBe('20020000');
    const w = await mqttOverWs(`ws://127.0.0.1:${port('ws')}/mqtt`, 'hs-ws-live');
    expect(w.answer).toBe('20020000');
    await sleep(DEADLINE_MS * 1.5);
    const pong = new Promise<string>((resolve) => t.socket.once('data', (d: Buffer) => resolve(d.toString('hex'))));
    t.socket.write(Buffer.from('c000', 'hex'));
    expect(await pong).toBe('d000');
    const wsPong = new Promise<string>((resolve) => w.ws.once('message', (d: Buffer) => resolve(d.toString('hex'))));
    w.ws.send(Buffer.from('c000', 'hex'));
    expect(await wsPong).toBe('d000');
    t.socket.destroy();
    w.ws.terminate();
  });
});

describe('handshakes in progress (maxPendingHandshakes, all listeners together)', () => {
  it('beyond the cap a TLS or WebSocket connection is closed at accept; plain TCP is not counted; places free up as handshakes end', async () => {
    const holding = [
      await stalled(port('mqtts')), await stalled(port('mqtts'), halfClientHello),
      await stalled(port('ws'), halfUpgrade), await stalled(port('wss')),
    ];
    expect(holding).toHaveLength(CAP);
    await sleep(50); // the broker has accepted all four
    for (const listener of ['mqtts', 'ws', 'wss']) {
      const refused = await stalled(port(listener), listener === 'ws' ? halfUpgrade : halfClientHello);
      expect(await refused.closedAfter).toBeLessThan(DEADLINE_MS / 2);
      expect(refused.received()).toBe(0);
    }
    // MQTT over plain TCP has no handshake to wait for.
    const tcp = await RawClient.connect(port('tcp'));
    tcp.send(connect311('hs-tcp'));
    expect(await tcp.packetHex()).toBe('20020000');
    tcp.end();
    // A place freed: the next handshake gets through, and once finished it holds no place either;
    // a new stalled one takes the place, and the one after is refused again.
    holding[0]!.socket.destroy();
    await holding[0]!.closedAfter;
    await sleep(50);
    const t = await mqttOverTls(port('mqtts'), 'hs-after-free');
    expect(t.answer).toBe('20020000');
    holding.push(await stalled(port('mqtts')));
    await sleep(50);
    const refused = await stalled(port('mqtts'));
    expect(await refused.closedAfter).toBeLessThan(DEADLINE_MS / 2);
    // At their deadline the stalled ones go, and WebSocket clients get in again.
    await Promise.all(holding.map((h) => h.closedAfter));
    const w = await mqttOverWs(`wss://127.0.0.1:${port('wss')}/mqtt`, 'hs-wss-after');
    expect(w.answer).toBe('20020000');
    t.socket.destroy();
    w.ws.terminate();
  });
});
