// A handler that throws closes only its connection (v5: DISCONNECT 0x83), and the log line names
// the packet type and length, never the packet's bytes (a user's payload, a CONNECT password).
import { Duplex, Writable } from 'node:stream';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { connect5, publish, sleep, startTestBroker } from './helpers.ts';

it('"packet handler threw" logs type and length only', async () => {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  }));
  const tb = await startTestBroker((c) => {
    c.limits.publishRatePerSecond = 1; // the first PUBLISH pauses the socket, which this socket makes throw
  }, undefined, logger);
  try {
    const written: Buffer[] = [];
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        written.push(chunk);
        done();
      },
    });
    let failPause = false;
    const pause = socket.pause.bind(socket);
    socket.pause = () => {
      if (failPause) throw new Error('pause failed');
      return pause();
    };
    tb.broker.accept(socket, { name: 'test', anonymousBypassesChain: true }, '127.0.0.1', undefined);
    socket.push(connect5('leaky'));
    for (let i = 0; i < 100 && written.length === 0; i++) await sleep(5);
    expect(written[0]?.[0]).toBe(0x20); // CONNACK
    failPause = true;
    const packet = publish('t', 'secret-payload', 0, 0, false, true);
    socket.push(packet);
    for (let i = 0; i < 100 && written.length < 2; i++) await sleep(5);
    expect(written[1]?.toString('hex')).toMatch(/^e0[0-9a-f]{2}83/); // DISCONNECT 0x83

    const threw = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'packet handler threw');
    expect(threw).toMatchObject({ clientId: 'leaky', packetType: 3, packetLength: packet.length });
    const log = lines.join('');
    expect(log).not.toContain('secret-payload');
    expect(log).not.toContain(Buffer.from('secret-payload').toString('hex'));
  } finally {
    await tb.stop();
  }
});
