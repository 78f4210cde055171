// A fuzz harness for the broker's input side: generated client sessions (CONNECT first, then any
// packet type, valid or with v5 properties a client must not send) whose bytes are mutated (flipped,
// inserted, deleted, truncated) and cut into chunks at random points, fed to a live in-process
// broker through an in-memory socket. After each input the broker must not have thrown out of a
// handler, what it wrote back must be a well-formed MQTT byte stream of packets that parse, and
// the connection must be gone once its socket closed. Used by fuzz.test.ts (a short run in the
// unit suite) and bench/fuzz/run.ts (long runs); both replay the corpus first (bench/fuzz/corpus/:
// hand-written seeds and every input that once failed, one JSON file each).
//
// Not coverage-guided: @jazzer.js/core 4.0.0 ships its native fuzzer only as a prebuilt binary
// that needs glibc 2.38 (Debian bookworm has 2.36), and its package carries no sources to build.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { pino } from 'pino';
import { embeddedDefaultConfig, validateBrokerConfig } from '../../../broker/config.ts';
import { encodePacket, parseFrame } from '../../../broker/protocol/codec.ts';
import type { Packet, ProtocolVersion } from '../../../broker/protocol/codec.ts';
import { FrameSplitter } from '../../../broker/protocol/framing.ts';
import { createBroker } from '../../../broker/server.ts';
import type { Broker } from '../../../broker/server.ts';
import { repoRoot } from '../../support/paths.ts';

export interface FuzzInput {
  version: 4 | 5;
  chunks: Buffer[];
}

/** A corpus file: an input as hex chunks, with a line saying why it is there. */
export interface CorpusEntry {
  note: string;
  version: 4 | 5;
  chunks: string[];
}

export const corpusDir = join(repoRoot, 'bench', 'fuzz', 'corpus');

export function toCorpusEntry(input: FuzzInput, note: string): CorpusEntry {
  return { note, version: input.version, chunks: input.chunks.map((c) => c.toString('hex')) };
}

/** Every input in the corpus directory, oldest name first. */
export function readCorpus(dir = corpusDir): { file: string; input: FuzzInput }[] {
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((file) => {
    const entry = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CorpusEntry;
    return { file, input: { version: entry.version, chunks: entry.chunks.map((h) => Buffer.from(h, 'hex')) } };
  });
}

/** An in-memory socket: push() is what the client sends, `written` what the broker wrote. */
class MemorySocket extends Duplex {
  readonly written: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written.push(chunk);
    cb();
  }
}

export interface FuzzBroker {
  broker: Broker;
  /** Feeds one input; returns problems found (empty: fine). */
  run(input: FuzzInput): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startFuzzBroker(): Promise<FuzzBroker> {
  const config = embeddedDefaultConfig('127.0.0.1', 0);
  config.admin.port = 0;
  Object.assign(config.limits, {
    maxPacketSize: 4096, maxInflight: 4, maxQueuedMessages: 5, maxQueuedBytes: 4096, topicAliasMaximum: 4,
    maxSubscriptionsPerClient: 5, maxRetainedBytes: 8192, maxTopicLevels: 6, maxTopicLength: 64, maxSessions: 50,
  });
  const handlerErrors: string[] = [];
  const logger = pino({ level: 'error' }, {
    write: (line: string) => {
      handlerErrors.push(line);
    },
  });
  const broker = createBroker({ config: validateBrokerConfig(config), logger, sysIntervalMs: 0 });
  await broker.start();
  const info = { name: 'fuzz', anonymousBypassesChain: true };

  // A subscriber to everything that never acknowledges: its in-flight window and queue fill up.
  const watcher = new MemorySocket();
  broker.accept(watcher, info, '127.0.0.1', undefined);
  watcher.push(encodePacket({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'fuzz-watcher', keepalive: 0 }, 5));
  watcher.push(encodePacket({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 2 }] }, 5));

  return {
    broker,
    async run(input) {
      const problems: string[] = [];
      handlerErrors.length = 0;
      const socket = new MemorySocket();
      const before = broker.connectionCount;
      broker.accept(socket, info, '127.0.0.1', undefined);
      for (const chunk of input.chunks) {
        if (socket.destroyed) break;
        socket.push(chunk);
      }
      await new Promise((r) => setImmediate(r)); // writes are flushed on the next tick
      problems.push(...wellFormed(Buffer.concat(socket.written), input.version));
      socket.destroy();
      await new Promise((r) => setImmediate(r));
      if (broker.connectionCount !== before) problems.push(`connection still registered after its socket closed (${broker.connectionCount} vs ${before})`);
      for (const line of handlerErrors) problems.push(`broker logged an error: ${line.slice(0, 300)}`);
      watcher.written.length = 0;
      return problems;
    },
    async stop() {
      watcher.destroy();
      await broker.stop(0);
    },
  };
}

/** Problems with what the broker wrote: framing, and each packet parsing for the client's version. */
function wellFormed(out: Buffer, version: ProtocolVersion): string[] {
  const problems: string[] = [];
  const frames: Buffer[] = [];
  const splitter = new FrameSplitter(Number.MAX_SAFE_INTEGER, {
    frame: (f) => frames.push(Buffer.from(f)),
    error: (reason) => problems.push(`broker wrote a bad frame: ${reason}`),
  });
  splitter.push(out);
  if (splitter.buffered !== 0) problems.push('broker wrote a truncated packet');
  for (const f of frames) {
    // A refused CONNECT is answered in the 3.1.1 form whatever the level (unsupported level).
    const parsed = parseFrame(f, f[0] === 0x20 && f.length === 4 ? 4 : version);
    if (parsed instanceof Error) problems.push(`broker wrote a packet that does not parse (${f.subarray(0, 16).toString('hex')}): ${parsed.message}`);
  }
  return problems;
}

// ---- inputs ------------------------------------------------------------------------------------

const levelArb = fc.constantFrom('a', 'b', '$SYS', '', 'x'.repeat(70), '\u00e9');
const topicArb = fc.array(levelArb, { minLength: 1, maxLength: 4 }).map((l) => l.join('/'));
const filterArb = fc.oneof(
  topicArb,
  fc.array(fc.constantFrom('a', '+', '#', 'b', ''), { minLength: 1, maxLength: 4 }).map((l) => l.join('/')),
  topicArb.map((t) => `$share/g/${t}`),
  fc.constantFrom('$share/g', '$share//a', '$share/g/', '$share/+/a'),
);
const idArb = fc.integer({ min: 1, max: 6 });
const qosArb = fc.constantFrom<0 | 1 | 2>(0, 1, 2);
const payloadArb = fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a));

/** Generated packets are built loosely (mqtt-packet's encoder is the judge of what it accepts). */
const asPacket = (o: object): Packet => o as Packet;

function packetArb(version: 4 | 5): fc.Arbitrary<Packet> {
  const v5 = version === 5;
  const publishProps = v5
    ? fc.option(fc.record({
      topicAlias: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
      messageExpiryInterval: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
      subscriptionIdentifier: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined, freq: 10 }),
      contentType: fc.option(fc.constant('text/plain'), { nil: undefined }),
      userProperties: fc.option(fc.constant({ k: 'v' }), { nil: undefined }),
    }, { requiredKeys: [] }), { nil: undefined })
    : fc.constant(undefined);
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ topic: fc.oneof(topicArb, fc.constant('')), payload: payloadArb, qos: qosArb, retain: fc.boolean(), dup: fc.boolean(), messageId: idArb, properties: publishProps })
      .map((p) => asPacket({ cmd: 'publish', ...p, messageId: p.qos === 0 ? undefined : p.messageId, properties: p.properties })) },
    { weight: 3, arbitrary: fc.record({ messageId: idArb, subs: fc.array(fc.record({ topic: filterArb, qos: qosArb, nl: fc.boolean(), rap: fc.boolean(), rh: fc.constantFrom(0, 1, 2) }), { minLength: 1, maxLength: 4 }), sid: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }) })
      .map((s) => asPacket({ cmd: 'subscribe', messageId: s.messageId, subscriptions: s.subs.map((x) => (v5 ? x : { topic: x.topic, qos: x.qos })), ...(v5 && s.sid !== undefined ? { properties: { subscriptionIdentifier: s.sid } } : {}) })) },
    { weight: 1, arbitrary: fc.record({ messageId: idArb, unsubscriptions: fc.array(filterArb, { minLength: 1, maxLength: 3 }) }).map((u) => asPacket({ cmd: 'unsubscribe', ...u })) },
    { weight: 3, arbitrary: fc.record({ cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp'), messageId: idArb }).map((a) => asPacket(a)) },
    { weight: 1, arbitrary: fc.constantFrom<Packet>({ cmd: 'pingreq' }, { cmd: 'disconnect' }, { cmd: 'pingresp' }) },
  );
}

function connectArb(version: 4 | 5): fc.Arbitrary<Packet> {
  return fc.record({
    clean: fc.boolean(),
    clientId: fc.constantFrom('', 'f1', 'f2'),
    keepalive: fc.constantFrom(0, 1, 60, 7200),
    will: fc.option(fc.record({ topic: topicArb, payload: payloadArb, qos: qosArb, retain: fc.boolean() }), { nil: undefined }),
    props: version === 5 ? fc.option(fc.record({
      receiveMaximum: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      topicAliasMaximum: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
      maximumPacketSize: fc.option(fc.integer({ min: 20, max: 200 }), { nil: undefined }),
      sessionExpiryInterval: fc.option(fc.constantFrom(0, 5, 0xffffffff), { nil: undefined }),
    }, { requiredKeys: [] }), { nil: undefined }) : fc.constant(undefined),
  }).map((c) => asPacket({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: c.clean, clientId: c.clientId, keepalive: c.keepalive,
    ...(c.will !== undefined ? { will: c.will } : {}), ...(c.props !== undefined ? { properties: c.props } : {}),
  }));
}

type Mutation = { at: number; kind: 'flip' | 'insert' | 'delete' | 'truncate'; byte: number };
const mutationArb: fc.Arbitrary<Mutation> = fc.record({ at: fc.nat(), kind: fc.constantFrom('flip', 'insert', 'delete', 'truncate'), byte: fc.integer({ min: 0, max: 255 }) });

function mutate(bytes: Buffer, mutations: Mutation[]): Buffer {
  let b = bytes;
  for (const m of mutations) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === 'flip') {
      b = Buffer.from(b);
      b[at] = b[at]! ^ (m.byte || 1);
    } else if (m.kind === 'insert') {
      b = Buffer.concat([b.subarray(0, at), Buffer.from([m.byte]), b.subarray(at)]);
    } else if (m.kind === 'delete') {
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    } else {
      b = b.subarray(0, at);
    }
  }
  return b;
}

/** One client session: CONNECT and packets, encoded, maybe mutated, cut into chunks. */
export const fuzzInputArb: fc.Arbitrary<FuzzInput> = fc.constantFrom<4 | 5>(4, 5).chain((version) => fc.record({
  connect: connectArb(version),
  packets: fc.array(packetArb(version), { maxLength: 12 }),
  mutations: fc.oneof({ weight: 2, arbitrary: fc.constant<Mutation[]>([]) }, { weight: 1, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 4 }) }),
  cuts: fc.array(fc.nat(), { maxLength: 6 }),
}).map(({ connect, packets, mutations, cuts }) => {
  const encoded: Buffer[] = [];
  for (const p of [connect, ...packets]) {
    try {
      encoded.push(encodePacket(p, version));
    } catch {
      // mqtt-packet refuses some generated combinations: leave that packet out
    }
  }
  const bytes = mutate(Buffer.concat(encoded), mutations);
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    if (p > last) chunks.push(bytes.subarray(last, p));
    last = Math.max(last, p);
  }
  if (last < bytes.length) chunks.push(bytes.subarray(last));
  return { version, chunks };
}));
