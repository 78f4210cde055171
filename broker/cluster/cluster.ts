// Owns the lifecycle of one replica's cluster state layer, the one object the broker holds in
// phase 2: link + bus + retained store + session store + shared groups + adoption, wired together. It answers
// takeover requests through the broker's callback, and after every Redis outage it writes back what
// only this replica knows (shared membership) and tells the broker to reload what Redis holds.
import { Adoption } from './adoption.ts';
import { Bus } from './bus.ts';
import type { ControlEnvelope } from './bus.ts';
import type { Envelope } from './envelope.ts';
import { RedisLink } from './link.ts';
import type { LinkObserver, RedisLinkConfig } from './link.ts';
import { RedisRetained } from './retained-store.ts';
import { Script } from './script.ts';
import { SessionStore } from './session-store.ts';
import { SharedGroups } from './shared.ts';
import type { SharedOptions } from './shared.ts';

/** What the broker does with cluster events; every callback must not throw. */
export interface ClusterHandlers {
  /** A message another replica accepted: route it locally (no retained store update here). */
  message(e: Envelope): void;
  /** A retained change in Redis order, own ones included: apply it to the local retained cache. */
  retained(e: Envelope, kept: boolean): void;
  /**
   * Another replica claimed `clientId` with `epoch`. If this replica has that client connected:
   * disconnect it (v5: 0x8E Session taken over), let its last state writes finish, resolve true.
   * Resolve false when the client is not here (nothing is answered then).
   */
  takeover(clientId: string, epoch: number): Promise<boolean>;
  /** The link came back after an outage and shared membership is restored: reload retained etc. */
  recovered?(): void;
  /** Messages of `origin` this replica never saw. */
  gap?(origin: string, missed: number): void;
  /** Back-pressure: undefined to read on, or a promise the bus reader waits for (session/backlog.ts). */
  room?(): Promise<void> | undefined;
}

export interface ClusterOptions {
  replicaId: string;
  link: RedisLinkConfig;
  maxRetainedBytes: number;
  streamMaxEntries?: number;
  shared?: SharedOptions;
  /** How long start() waits for Redis before resolving anyway (the broker then starts degraded). */
  startTimeoutMs?: number;
  observer?: LinkObserver;
}

export class Cluster {
  readonly replicaId: string;
  readonly link: RedisLink;
  readonly bus: Bus;
  readonly retained: RedisRetained;
  readonly sessions: SessionStore;
  readonly shared: SharedGroups;
  readonly adoption: Adoption;
  private readonly handlers: ClusterHandlers;
  private wasDown = false;
  /**
   * The last heartbeat Redis held for this replica id when it started: a previous process under the
   * same id (a restarted container) that did not stop gracefully. What it still owns is adopted
   * (broker/replication-adoption.ts); undefined when there was none.
   */
  previousHeartbeat: number | undefined;

  constructor(options: ClusterOptions, handlers: ClusterHandlers) {
    this.replicaId = options.replicaId;
    this.handlers = handlers;
    this.link = new RedisLink({ ...options.link, prepare: (command) => Script.loadAll(command) }, options.observer);
    this.bus = new Bus(this.link, options.replicaId, {
      message: (e) => handlers.message(e),
      retained: (e, kept) => handlers.retained(e, kept),
      control: (m) => this.onControl(m),
      gap: (origin, missed) => handlers.gap?.(origin, missed),
      room: () => handlers.room?.(),
    }, { maxEntries: options.streamMaxEntries });
    this.retained = new RedisRetained(this.link, this.bus, options.maxRetainedBytes);
    this.sessions = new SessionStore(this.link, options.replicaId);
    this.shared = new SharedGroups(this.link, this.bus, options.shared);
    this.adoption = new Adoption(this.link, this.sessions);
    this.link.observe({
      down: () => {
        this.wasDown = true;
      },
      up: () => void this.recover(),
    });
  }

  /**
   * Connects and starts reading. Resolves true when Redis answered within the start timeout, false
   * when it did not: the replica runs degraded and recovers by itself when Redis appears.
   */
  async start(timeoutMs = 10_000): Promise<boolean> {
    this.bus.start();
    try {
      await this.link.whenUp(timeoutMs);
      this.previousHeartbeat = await this.shared.lastHeartbeat(this.replicaId);
      // Before this process's first beat overwrites the crashed one's (see SharedGroups.markRestart).
      if (this.previousHeartbeat !== undefined) await this.shared.markRestart(this.previousHeartbeat);
      await this.shared.start();
      return true;
    } catch {
      this.wasDown = true;
      return false;
    }
  }

  async stop(): Promise<void> {
    this.shared.stop();
    await this.bus.stop();
    await this.link.close();
  }

  private onControl(m: ControlEnvelope): void {
    this.shared.onControl(m);
    if (m.type !== 'takeover') return;
    void this.handlers.takeover(m.clientId, m.epoch).then(async (owned) => {
      if (owned) await this.bus.control({ type: 'released', clientId: m.clientId, epoch: m.epoch, to: m.newOwner });
    }).catch(() => undefined); // the new owner times out and fences: nothing more to do here
  }

  private async recover(): Promise<void> {
    if (!this.wasDown) return;
    this.wasDown = false;
    try {
      await this.shared.restore();
      this.handlers.recovered?.();
    } catch {
      this.wasDown = true; // down again meanwhile: the next `up` retries
    }
  }
}
