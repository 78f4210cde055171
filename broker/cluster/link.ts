// Owns one replica's connections to Redis: a command client (every read and write; the commands
// of one event-loop turn leave in one socket write, in the order they were issued), a reader client (blocking stream reads, which would stall commands queued behind
// them) and a subscriber client (control channel). Commands fail fast while Redis is down (no
// offline queue, one retry) so a CONNECT is never held hostage; ioredis reconnects with a capped,
// jittered exponential backoff. The link reports `up` when all three clients are ready and `down`
// with a reason as soon as one is not; it never lets an ioredis error reach the process. A password
// from a mounted file is re-read when the file changes and used from the next (re)connect: a
// rotation needs no restart (connections already authenticated stay; Redis keeps them).
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { watchTextFile } from '../mounted-files.ts';
import type { WatchedFile } from '../mounted-files.ts';

export interface RedisLinkConfig {
  host: string;
  port: number;
  username?: string;
  password?: string;
  /**
   * The file `password` was read from (a mounted Secret key): watched, and its new content is the
   * password of every later (re)connect. Read now when `password` is not given.
   */
  passwordFile?: string;
  /** How often the password file is checked (ms; default: mounted-files.ts). */
  passwordWatchIntervalMs?: number;
  /** PEM of the CA that signed Redis' certificate; TLS is used when set. */
  caFile?: string;
  /** Server name checked against the certificate (default: host). */
  tlsServerName?: string;
  db?: number;
  /** Every key this replica reads or writes starts with it, e.g. `enclave:<deployment uid>:`. */
  keyPrefix: string;
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  /** Reconnect backoff: first delay and cap. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /**
   * Runs on the command connection each time it becomes ready, before the link counts it as up
   * (cluster.ts loads the Lua scripts). A failure is a failed connect: the client reconnects.
   */
  prepare?: (command: Redis) => Promise<void>;
}

export type LinkState = 'up' | 'down';

/** Plain callbacks; the broker maps them to logs and prom-client metrics. */
export interface LinkObserver {
  up?(): void;
  /** `reason` is an error code or a short message; it never carries credentials. */
  down?(reason: string): void;
  /** A client started a reconnect attempt. */
  reconnecting?(client: string, delayMs: number): void;
  /** A command failed (Redis down, timeout, script error). */
  failure?(reason: string): void;
  /** The password file changed: the next (re)connect authenticates with its new content. */
  passwordChanged?(): void;
}

export interface LinkCounters {
  failures: number;
  reconnects: number;
  downs: number;
}

export class LinkError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

const DEFAULT_COMMAND_TIMEOUT_MS = 2_000;

/** What the sweep reads of ioredis' queue of written, unanswered commands (internal, stable since v4). */
interface AnswerQueue {
  commandQueue: { length: number; peekAt(i: number): { command: { isSettled: boolean; reject(err: Error): void } } | undefined };
}

/**
 * Fails every command Redis has not answered within `timeoutMs` ("Command timed out", as ioredis'
 * `commandTimeout` does), without a timer per command: a setTimeout and a clearTimeout per command
 * cost ~20 % of the client's CPU per command at bench:ha rates. Every `timeoutMs / 4` the newest
 * command written is noted; once a note is `timeoutMs` old, every command up to it that is still
 * unanswered has waited at least that long (answers come in order). A late answer is still read
 * and dropped, as with ioredis' timeout; the connection stays.
 */
function sweepUnanswered(client: Redis, timeoutMs: number): NodeJS.Timeout {
  const notes: { at: number; item: unknown }[] = [];
  const timer = setInterval(() => {
    const queue = (client as unknown as AnswerQueue).commandQueue;
    const now = Date.now();
    const newest = queue.length === 0 ? undefined : queue.peekAt(queue.length - 1);
    if (newest !== undefined && notes.at(-1)?.item !== newest) notes.push({ at: now, item: newest });
    let due: unknown;
    while (notes.length > 0 && now - notes[0]!.at >= timeoutMs) due = notes.shift()!.item;
    if (due === undefined) return;
    let upTo = -1;
    for (let i = 0; i < queue.length && upTo < 0; i++) if (queue.peekAt(i) === due) upTo = i;
    for (let i = 0; i <= upTo; i++) {
      const { command } = queue.peekAt(i)!;
      if (!command.isSettled) command.reject(new Error('Command timed out'));
    }
  }, Math.max(10, Math.floor(timeoutMs / 4)));
  timer.unref();
  return timer;
}

/** Capped exponential backoff with ±25 % jitter, so replicas do not reconnect in lockstep. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 20));
  return Math.round(raw * (0.75 + Math.random() * 0.5));
}

/** An error as a reason safe to log: the code when there is one, else the first line, shortened. */
export function reasonOf(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e.code === 'string' && e.code !== '') return e.code;
  const msg = typeof e.message === 'string' ? e.message : String(err);
  return msg.split('\n')[0]!.slice(0, 120);
}

type ClientName = 'command' | 'reader' | 'subscriber';

export class RedisLink {
  readonly command: Redis;
  readonly reader: Redis;
  readonly subscriber: Redis;
  readonly keyPrefix: string;
  readonly counters: LinkCounters = { failures: 0, reconnects: 0, downs: 0 };
  private readonly observers: LinkObserver[] = [];
  private readonly ready = new Set<ClientName>();
  private current: LinkState = 'down';
  private closed = false;
  private waiters: (() => void)[] = [];
  private readonly prepare: ((command: Redis) => Promise<void>) | undefined;
  private readonly passwordWatch: WatchedFile | undefined;
  /** The command socket while it gathers this turn's commands (see gatherPerTurn). */
  private corked: Socket | undefined;
  private readonly uncork = (): void => this.flushCommands();
  private readonly sweep: NodeJS.Timeout;

  constructor(config: RedisLinkConfig, observer?: LinkObserver) {
    this.keyPrefix = config.keyPrefix;
    if (observer !== undefined) this.observers.push(observer);
    if (config.passwordFile !== undefined) {
      this.passwordWatch = watchTextFile(config.passwordFile, (password) => this.rotatePassword(password), { intervalMs: config.passwordWatchIntervalMs });
      config = { ...config, password: config.password ?? this.passwordWatch.current() };
    }
    const base = clientOptions(config, (name, delay) => {
      this.counters.reconnects++;
      for (const o of this.observers) o.reconnecting?.(name, delay);
    });
    this.prepare = config.prepare;
    // No timer per command on the hot connection: sweepUnanswered() gives the same deadline.
    this.command = this.watch('command', this.gatherPerTurn(new Redis({ ...base('command'), commandTimeout: undefined })));
    this.sweep = sweepUnanswered(this.command, config.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
    // Blocking reads wait up to their own timeout: no command timeout on the reader.
    this.reader = this.watch('reader', new Redis({ ...base('reader'), commandTimeout: undefined }));
    this.subscriber = this.watch('subscriber', new Redis(base('subscriber')));
  }

  get state(): LinkState {
    return this.current;
  }

  observe(o: LinkObserver): void {
    this.observers.push(o);
  }

  /** Resolves when the link is up, or rejects after `timeoutMs` (the broker then starts degraded). */
  async whenUp(timeoutMs: number): Promise<void> {
    if (this.current === 'up') return;
    let timer: NodeJS.Timeout | undefined;
    let waiter: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        waiter = resolve;
        this.waiters.push(resolve);
        timer = setTimeout(() => reject(new LinkError('REDIS_UNAVAILABLE', `Redis not reachable within ${timeoutMs} ms`)), timeoutMs);
      });
    } finally {
      clearTimeout(timer);
      // A caller that gave up is not kept: polling whenUp() through a long outage must not pile up.
      this.waiters = this.waiters.filter((w) => w !== waiter);
    }
  }

  /**
   * ioredis reads `options.password` on every connect (Redis.connect builds the AUTH/HELLO from
   * it): the clients keep their connections, and a reconnect (a Redis restart, a blip, or Redis
   * refusing the old password) authenticates with the new one.
   */
  private rotatePassword(password: string): void {
    for (const client of [this.command, this.reader, this.subscriber]) client.options.password = password;
    for (const o of this.observers) o.passwordChanged?.();
  }

  /** Writes the commands gathered so far now instead of at the end of the turn (bus.ts, after its XADD). */
  flushCommands(): void {
    const socket = this.corked;
    this.corked = undefined;
    socket?.uncork();
  }

  /**
   * The commands issued on `client` during one turn of the event loop go out in one socket write
   * (cork at the first, uncork at setImmediate), in issue order. ioredis' auto-pipelining does the
   * same with a pipeline object and an extra promise per command: this costs ~20-30 % less CPU per
   * command, and every command keeps its place in the one order the session writes rely on.
   */
  private gatherPerTurn(client: Redis): Redis {
    const send = client.sendCommand.bind(client);
    client.sendCommand = (command, stream) => {
      const socket = client.stream as Socket | undefined;
      if (this.corked === undefined && stream === undefined && socket !== undefined && client.status === 'ready') {
        socket.cork();
        this.corked = socket;
        setImmediate(this.uncork);
      }
      return send(command, stream);
    };
    return client;
  }

  /** Counts and reports a failed command; returns a LinkError to throw or answer. */
  failed(err: unknown, what: string): LinkError {
    this.counters.failures++;
    const reason = reasonOf(err);
    for (const o of this.observers) o.failure?.(`${what}: ${reason}`);
    return new LinkError(this.current === 'down' ? 'REDIS_UNAVAILABLE' : 'REDIS_FAILED', `${what} failed: ${reason}`, { cause: err });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.passwordWatch?.stop();
    clearInterval(this.sweep);
    await Promise.all([this.command, this.reader, this.subscriber].map((c) => c.quit().catch(() => c.disconnect())));
  }

  private watch(name: ClientName, client: Redis): Redis {
    // Without an 'error' listener an ioredis error event would crash the process.
    client.on('error', (err: unknown) => this.markDown(name, reasonOf(err)));
    client.on('ready', () => {
      if (name === 'command' && this.prepare !== undefined) {
        this.prepare(client).then(() => this.markReady(name), (err: unknown) => {
          this.failed(err, 'prepare');
          client.disconnect(true);
        });
        return;
      }
      this.markReady(name);
    });
    client.on('close', () => this.markDown(name, 'connection closed'));
    client.on('end', () => this.markDown(name, 'connection ended'));
    return client;
  }

  private markReady(name: ClientName): void {
    this.ready.add(name);
    if (this.ready.size === 3 && this.current === 'down') {
      this.current = 'up';
      for (const o of this.observers) o.up?.();
      for (const w of this.waiters.splice(0)) w();
    }
  }

  private markDown(name: ClientName, reason: string): void {
    this.ready.delete(name);
    if (this.current === 'down' || this.closed) return;
    this.current = 'down';
    this.counters.downs++;
    for (const o of this.observers) o.down?.(`${name}: ${reason}`);
  }
}

function clientOptions(config: RedisLinkConfig, onRetry: (client: string, delayMs: number) => void): (name: ClientName) => RedisOptions {
  const ca = config.caFile === undefined ? undefined : readFileSync(config.caFile);
  const baseMs = config.backoffBaseMs ?? 100;
  const maxMs = config.backoffMaxMs ?? 5_000;
  return (name) => ({
    host: config.host,
    port: config.port,
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(config.password !== undefined ? { password: config.password } : {}),
    ...(ca !== undefined ? { tls: { ca, servername: config.tlsServerName ?? config.host } } : {}),
    db: config.db ?? 0,
    connectionName: `enclave-${name}`,
    connectTimeout: config.connectTimeoutMs ?? 2_000,
    commandTimeout: config.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    // Fail fast while Redis is down: nothing waits in a queue for a Redis that may not come back.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times: number) => {
      const delay = backoffDelay(times, baseMs, maxMs);
      onRetry(name, delay);
      return delay;
    },
  });
}
