// Packets that arrive in pieces: reassembly is linear in the bytes received however small the
// pieces, and a packet begun must be finished in time — neither keep-alive nor a trickle of bytes
// may hold a half-sent packet (and its buffer) open for ever.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { FrameSplitter } from '../../../broker/protocol/framing.ts';
import { RawClient, connect311, publish, sleep, startTestBroker, subscribe } from './helpers.ts';

/** Sends `bytes` one at a time every `everyMs` until the connection closes or `forMs` passed; returns ms until close, or undefined. */
async function trickle(c: RawClient, bytes: Buffer, everyMs: number, forMs: number): Promise<number | undefined> {
  const start = Date.now();
  for (let i = 0; Date.now() - start < forMs; i++) {
    if (c.closed) return Date.now() - start;
    c.send(bytes.subarray(i % bytes.length, (i % bytes.length) + 1));
    await sleep(everyMs);
  }
  return c.closed ? Date.now() - start : undefined;
}

// A PUBLISH declaring 100 KB of which only the trickled bytes ever arrive.
const unfinished = Buffer.concat([Buffer.from([0x30, 0xa0, 0x8d, 0x06]), Buffer.alloc(4096, 0x61)]);

describe('a packet that is never finished', () => {
  it('keep-alive counts whole packets: a byte every 200 ms does not keep a 1 s keep-alive connection open', async () => {
    const tb = await startTestBroker();
    try {
      const c = await RawClient.connect(tb.port);
      c.send(connect311('trickle-ka', 0x02, 1));
      expect(await c.packetHex()).toBe('20020000');
      const closedAfter = await trickle(c, unfinished, 200, 4000);
      expect(closedAfter).toBeDefined(); // before the fix: still open after 4 s, each byte renewing the keep-alive
      expect(closedAfter!).toBeGreaterThan(1000);
    } finally {
      await tb.stop();
    }
  });

  it('without keep-alive, packetReadTimeoutMs closes a connection whose packet is not finished in time', async () => {
    const tb = await startTestBroker((c) => {
      c.limits.packetReadTimeoutMs = 1000;
    });
    try {
      const c = await RawClient.connect(tb.port);
      c.send(connect311('trickle-0', 0x02, 0));
      expect(await c.packetHex()).toBe('20020000');
      // Whole packets are fine, however long the connection lives.
      c.send('c000');
      expect(await c.packetHex()).toBe('d000');
      const closedAfter = await trickle(c, unfinished, 100, 4000);
      expect(closedAfter).toBeDefined();
      expect(closedAfter!).toBeGreaterThan(700);
      expect(closedAfter!).toBeLessThan(2500);
    } finally {
      await tb.stop();
    }
  });
});

describe('a connection closed with a packet half read', () => {
  it('is not kept alive by the packet deadline (found by the fuzzer: each held its buffer for 30 s)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const tb = await startTestBroker();
    try {
      const connections = (tb.broker as unknown as { connections: Set<object> }).connections;
      const c = await RawClient.connect(tb.port);
      while (connections.size === 0) await sleep(5);
      const conn = new WeakRef([...connections][0]!);
      // PINGREQ before CONNECT closes the connection; a PUBLISH begun in the same write stays half read.
      c.send(Buffer.concat([Buffer.from([0xc0, 0x00]), unfinished]));
      await c.closedPromise;
      for (let i = 0; i < 20 && conn.deref() !== undefined; i++) {
        await sleep(100);
        gc();
      }
      expect(conn.deref()).toBeUndefined();
    } finally {
      await tb.stop();
    }
  });
});

describe('reassembly', () => {
  it('a 1 MiB packet pushed one byte at a time is reassembled in linear time (was quadratic: a copy of all pending bytes per piece)', () => {
    const body = Buffer.alloc(1024 * 1024 - 5, 0x62);
    const packet = Buffer.concat([Buffer.from([0x30, 0xfb, 0xff, 0x3f]), Buffer.from([0x00, 0x01, 0x74]), body.subarray(3)]);
    const frames: Buffer[] = [];
    const s = new FrameSplitter(2 * 1024 * 1024, { frame: (f) => frames.push(Buffer.from(f)), error: (e) => frames.push(Buffer.from(e)) });
    const started = performance.now();
    for (let i = 0; i < packet.length; i++) s.push(packet.subarray(i, i + 1));
    const ms = performance.now() - started;
    expect(frames).toHaveLength(1);
    expect(frames[0]!.equals(packet)).toBe(true);
    expect(ms).toBeLessThan(3000); // ~0.3 s; before the fix ~5.5e11 bytes copied
  });

  it('a 1 MiB declared length with 10 bytes behind it holds a small buffer, not the declared size', () => {
    const s = new FrameSplitter(2 * 1024 * 1024, { frame: () => undefined, error: () => undefined });
    s.push(Buffer.concat([Buffer.from([0x30, 0xfb, 0xff, 0x3f]), Buffer.alloc(10)]));
    expect(s.buffered).toBe(14);
    const held = (s as unknown as { assembly: Buffer }).assembly;
    expect(held.length).toBeLessThanOrEqual(4096);
  });

  it('on the wire: a PUBLISH written in 7-byte pieces, each its own TCP segment, arrives intact', async () => {
    const tb = await startTestBroker();
    try {
      const sub = await RawClient.connect(tb.port);
      sub.send(connect311('pieces-sub'));
      await sub.packet();
      sub.send(subscribe(1, 'pieces', 0));
      await sub.packet();
      const pub = await RawClient.connect(tb.port);
      pub.socket.setNoDelay(true);
      pub.send(connect311('pieces-pub'));
      await pub.packet();
      const payload = Buffer.alloc(8192, 0x63).toString();
      const packet = publish('pieces', payload);
      for (let i = 0; i < packet.length; i += 7) {
        pub.send(packet.subarray(i, i + 7));
        await new Promise((r) => setImmediate(r));
      }
      expect((await sub.packet())?.equals(packet)).toBe(true);
      sub.end();
      pub.end();
    } finally {
      await tb.stop();
    }
  });
});
