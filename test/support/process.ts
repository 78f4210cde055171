// Owns the lifecycle of every service process the tests start: spawn in its own process group with
// its output in a log file, wait for readiness, and ALWAYS stop — on stop(), on process exit, on
// SIGINT/SIGTERM, and (via the kernel's parent-death signal) even when our own process is SIGKILLed.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves when the process has exited (any reason). */
  readonly exited: Promise<number | null>;
  /** SIGTERM to the whole process group, SIGKILL after `graceMs`; resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnServiceOptions {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this OS user (only when we are root): e.g. PostgreSQL refuses to run as root. */
  runAsUser?: string;
}

const live = new Set<ChildProcess>();
let hooksInstalled = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Synchronous last resort: SIGKILL every process group we started. Safe to call many times. */
export function killAllServices(): void {
  for (const child of live) killGroup(child, 'SIGKILL');
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllServices);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllServices();
      // Alone, re-raise so the default action (exit with 128+n) still happens; otherwise the other
      // listeners (vitest, scripts/start.ts) decide how the process ends.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

/**
 * Starts a long-running service. `setpriv --pdeathsig KILL` makes the kernel kill the service when
 * the Node process dies, however it dies; `detached` gives it its own process group so stop()
 * also reaches anything it forks (PostgreSQL backends).
 */
export function spawnService(opts: SpawnServiceOptions): ServiceProcess {
  installExitHooks();
  const wrapper = ['--pdeathsig', 'KILL'];
  if (opts.runAsUser !== undefined && process.getuid?.() === 0) {
    wrapper.push('--reuid', opts.runAsUser, '--regid', opts.runAsUser, '--init-groups');
  }
  const out = openSync(opts.logFile, 'a');
  const child = spawn('setpriv', [...wrapper, '--', opts.command, ...opts.args], {
    detached: true,
    stdio: ['ignore', out, out],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  closeSync(out);
  if (child.pid === undefined) throw new Error(`${opts.name}: failed to spawn ${opts.command}`);
  live.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    });
    child.once('error', () => {
      live.delete(child);
      resolve(null);
    });
  });
  const pid = child.pid;
  return {
    name: opts.name,
    pid,
    logFile: opts.logFile,
    exited,
    async stop(graceMs = 5_000) {
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // Children of the group (e.g. postgres backends) may outlive the leader for a moment.
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Group fully gone.
      }
    },
  };
}

/** The last `lines` lines of a log file, for error messages when a service fails to start. */
export function tailLog(file: string, lines = 40): string {
  if (!existsSync(file)) return '(no log file)';
  const text = readFileSync(file, 'utf8').trimEnd().split('\n');
  return text.slice(-lines).join('\n');
}

/**
 * Polls `probe` until it returns true; fails fast with the service's log tail if the service exits,
 * or after `timeoutMs`.
 */
export async function waitUntilReady(
  service: ServiceProcess,
  probe: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let died = false;
  void service.exited.then(() => {
    died = true;
  });
  let lastError = '';
  while (Date.now() < deadline) {
    if (died) {
      throw new Error(`${service.name} exited during startup. Log ${service.logFile}:\n${tailLog(service.logFile)}`);
    }
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  throw new Error(
    `${service.name} not ready after ${timeoutMs} ms (last probe error: ${lastError || 'none'}). ` +
      `Log ${service.logFile}:\n${tailLog(service.logFile)}`,
  );
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not allocate a free port'));
      });
    });
  });
}
