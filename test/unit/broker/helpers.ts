// Test helpers: a broker on an ephemeral 127.0.0.1 port, and a raw socket client that writes bytes
// and reads whole MQTT packets back (the wire-level tests assert on those bytes).
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createAuthChain } from '../../../broker/auth/chain.ts';
import type { Socket } from 'node:net';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { AuthHook } from '../../../broker/auth/hook.ts';
import { embeddedDefaultConfig, validateBrokerConfig } from '../../../broker/config.ts';
import type { BrokerConfig } from '../../../broker/config.ts';
import { createBroker } from '../../../broker/server.ts';
import type { Broker } from '../../../broker/server.ts';

export interface TestBroker {
  broker: Broker;
  port: number;
  stop(): Promise<void>;
}

export async function startTestBroker(
  patch: (c: BrokerConfig) => void = () => undefined, authHook?: AuthHook, logger: Logger = pino({ level: 'silent' }),
): Promise<TestBroker> {
  const config = embeddedDefaultConfig('127.0.0.1', 0);
  config.admin.port = 0;
  patch(config);
  const broker = createBroker({ config: validateBrokerConfig(config), authHook, logger, sysIntervalMs: 0 });
  await broker.start();
  return { broker, port: broker.addresses()[0]!.port, stop: () => broker.stop(200) };
}

/** The contents of a builtin source's users file. */
export interface UsersData { users: object[]; acl: object[] }

/** A broker whose auth chain is one builtin source (plain passwords) over a users file the test rewrites. */
export interface UsersFileBroker extends TestBroker {
  hook: AuthHook;
  /** Rewrites the file atomically (a new inode, as a Secret volume update gives); the source reloads it. */
  write(data: UsersData): Promise<void>;
}

export async function startUsersFileBroker(name: string, initial: UsersData): Promise<UsersFileBroker> {
  const dir = await mkdtemp(join(tmpdir(), `${name}-`));
  const usersFile = join(dir, 'users.yaml');
  const write = async (data: UsersData): Promise<void> => {
    await writeFile(`${usersFile}.tmp`, stringify(data));
    await rename(`${usersFile}.tmp`, usersFile);
  };
  await write(initial);
  const patch = (c: BrokerConfig): void => {
    c.sources = { file: { type: 'builtin', dataFile: usersFile, passwordHash: { algorithm: 'plain' } } };
    c.authentication = { chain: ['file'], allowAnonymous: false };
    c.authorization = { chain: ['file'], noMatch: 'deny', denyAction: 'ignore', cache: { enabled: true, maxSize: 32, ttlSeconds: 60 } };
    c.listeners[0]!.allowAnonymous = false;
  };
  const config = embeddedDefaultConfig('127.0.0.1', 0);
  patch(config);
  const hook = await createAuthChain(validateBrokerConfig(config), { logger: pino({ level: 'silent' }), fileWatchIntervalMs: 20 });
  const tb = await startTestBroker(patch, hook);
  return {
    ...tb, hook, write,
    async stop() {
      await tb.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

/** A raw MQTT byte client: send bytes, read whole packets. */
export class RawClient {
  readonly socket: Socket;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      });
    });
    socket.on('error', () => undefined);
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? hex(bytes) : bytes);
  }

  private tryTake(): Buffer | undefined {
    if (this.buf.length < 2) return undefined;
    let len = 0;
    let mul = 1;
    let i = 1;
    for (;;) {
      if (i >= this.buf.length) return undefined;
      const b = this.buf[i]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
      i++;
      if ((b & 0x80) === 0) break;
    }
    if (this.buf.length < i + len) return undefined;
    const p = this.buf.subarray(0, i + len);
    this.buf = this.buf.subarray(i + len);
    return Buffer.from(p);
  }

  /** Next whole packet; undefined when the connection closed first. */
  async packet(): Promise<Buffer | undefined> {
    for (;;) {
      const p = this.tryTake();
      if (p !== undefined) return p;
      if (this.closed) return undefined;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  async packetHex(): Promise<string | undefined> {
    return (await this.packet())?.toString('hex');
  }

  /** Waits for the close; returns packets received before it. */
  async untilClosed(): Promise<string[]> {
    const out: string[] = [];
    for (;;) {
      const p = await this.packet();
      if (p === undefined) return out;
      out.push(p.toString('hex'));
    }
  }

  end(): void {
    this.socket.destroy();
  }
}

/** CONNECT bytes for a v3.1.1 client with clean session and keepalive 60. */
export function connect311(clientId: string, flags = 0x02, keepalive = 60): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([hex('00044d51545404'), Buffer.from([flags, keepalive >> 8, keepalive & 0xff]), Buffer.from([id.length >> 8, id.length & 0xff]), id]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

/** CONNECT bytes for a v5 client (no properties unless given as raw bytes). */
export function connect5(clientId: string, flags = 0x02, props: Buffer = Buffer.alloc(0), keepalive = 60): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([
    hex('00044d51545405'), Buffer.from([flags, keepalive >> 8, keepalive & 0xff, props.length]), props,
    Buffer.from([id.length >> 8, id.length & 0xff]), id,
  ]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

export function publish(topic: string, payload: string, qos: 0 | 1 | 2 = 0, id = 0, retain = false, v5 = false): Buffer {
  const t = Buffer.from(topic);
  const p = Buffer.from(payload);
  const parts = [Buffer.from([t.length >> 8, t.length & 0xff]), t];
  if (qos > 0) parts.push(Buffer.from([id >> 8, id & 0xff]));
  if (v5) parts.push(Buffer.from([0]));
  parts.push(p);
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([0x30 | (qos << 1) | (retain ? 1 : 0)]), varint(body.length), body]);
}

export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

export function subscribe(id: number, filter: string, options: number, v5 = false): Buffer {
  const f = Buffer.from(filter);
  const body = Buffer.concat([Buffer.from([id >> 8, id & 0xff]), v5 ? Buffer.from([0]) : Buffer.alloc(0), Buffer.from([f.length >> 8, f.length & 0xff]), f, Buffer.from([options])]);
  return Buffer.concat([Buffer.from([0x82, body.length]), body]);
}

// One sleep for every test (test/support/wait.ts); re-exported for the broker tests' imports.
export { sleep } from '../../support/wait.ts';

// ---- building arbitrary (also invalid) packets byte by byte ------------------------------------

/** A whole packet: first header byte, Remaining Length, then the parts (hex strings or bytes). */
export function frame(first: number, ...parts: (Buffer | string)[]): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? hex(p) : p)));
  return Buffer.concat([Buffer.from([first]), varint(body.length), body]);
}

/** A length-prefixed string: text as UTF-8, or raw bytes (to send ill-formed UTF-8). */
export function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** A v5 property list from the hex of its properties. */
export function props(propertiesHex = ''): Buffer {
  const b = hex(propertiesHex);
  return Buffer.concat([varint(b.length), b]);
}

export interface ConnectParts {
  level?: 4 | 5;
  clientId?: string | Buffer;
  /** v5 CONNECT properties (hex). */
  properties?: string;
  will?: { properties?: string; topic: string | Buffer; payload?: string };
  username?: string | Buffer;
  password?: string;
  flags?: number;
}

/** A CONNECT with any field replaceable by raw bytes; clean start, keepalive 60. */
export function connectPacket(p: ConnectParts): Buffer {
  const level = p.level ?? 5;
  let flags = p.flags ?? 0x02;
  if (p.will !== undefined) flags |= 0x04;
  if (p.username !== undefined) flags |= 0x80;
  if (p.password !== undefined) flags |= 0x40;
  const parts: Buffer[] = [str('MQTT'), Buffer.from([level, flags, 0, 60])];
  if (level === 5) parts.push(props(p.properties));
  parts.push(str(p.clientId ?? 'c'));
  if (p.will !== undefined) {
    if (level === 5) parts.push(props(p.will.properties));
    parts.push(str(p.will.topic), str(p.will.payload ?? ''));
  }
  if (p.username !== undefined) parts.push(str(p.username));
  if (p.password !== undefined) parts.push(str(p.password));
  return frame(0x10, ...parts);
}
