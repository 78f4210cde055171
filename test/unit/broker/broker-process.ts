// A broker in a child process (`node broker/main.ts --config FILE`), so a test can load it from
// outside and measure what the process really holds (resident set size from /proc), not what the
// broker's own counters say.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { repoRoot } from '../../support/paths.ts';
import { sleep } from './helpers.ts';

const main = join(repoRoot, 'broker', 'main.ts');

export interface BrokerProcess {
  port: number;
  pid: number;
  /** Resident set size of the broker process, in MiB. */
  rssMiB(): number;
  /** RSS after the process had `ms` to settle (GC of garbage made by the load just sent). */
  settledRssMiB(ms?: number): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts a broker with the embedded default listener (TCP, anonymous) on a free port and the
 * given `limits`; `extra` is merged into the config (auth sources, chains).
 */
export async function spawnBroker(limits: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<BrokerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'broker-proc-'));
  const file = join(dir, 'broker.yaml');
  writeFileSync(file, stringify({
    name: 'memory-test',
    listeners: [{ name: 'default', protocol: 'mqtt', host: '127.0.0.1', port: 0, allowAnonymous: true }],
    admin: { host: '127.0.0.1', port: 0 },
    limits,
    authentication: { chain: [], allowAnonymous: true },
    authorization: { chain: [], noMatch: 'allow' },
    logging: { level: 'info' },
    ...extra,
  }));
  // A fixed young generation, so RSS differences are what the broker holds, not how V8 sized its nursery.
  const child = spawn(process.execPath, ['--max-semi-space-size=8', main, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  let port: number | undefined;
  while (port === undefined) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`broker did not start: ${stderr}${stdout}`);
    await sleep(50);
    port = startedPort(stdout);
  }
  const rssMiB = (): number => {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return Number(m![1]) / 1024;
  };
  return {
    port,
    pid: child.pid!,
    rssMiB,
    settledRssMiB: async (ms = 1000) => {
      await sleep(ms);
      return rssMiB();
    },
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The MQTT listener's port from the "broker started" log line. */
function startedPort(stdout: string): number | undefined {
  for (const line of stdout.split('\n')) {
    if (!line.includes('"broker started"')) continue;
    const entry = JSON.parse(line) as { listeners: { port: number }[] };
    return entry.listeners[0]!.port;
  }
  return undefined;
}
