// The broker under soak: `node broker/main.ts --config FILE` in a child process, as the operator
// runs it, with a builtin auth source over a users file the soak rewrites (an auth reload each
// time). What it holds is read from outside: RSS from /proc, heap and event-loop delay from its
// own /metrics (prom-client resets the event-loop histogram at each scrape, so a scrape per
// minute gives that minute's delay).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { hashPassword } from '../../broker/auth/password.ts';

const main = join(import.meta.dirname, '../../broker/main.ts');

/** Every soak client logs in as this user (allowed everything under soak/ except what the toggle removes). */
export const soakUser = { username: 'soak-device', password: 'soak-password' };

export interface SoakBroker {
  port: number;
  pid: number;
  rssMiB(): number;
  /** The broker's own metrics, one number per series (`name{labels}` as printed). */
  scrape(): Promise<Map<string, number>>;
  /**
   * Rewrites the users file (new inode, as a Secret volume update does): `generation` rotates a
   * batch of extra users, and on odd generations soak/toggle/# is no longer allowed.
   */
  rewriteUsers(generation: number): Promise<void>;
  stop(): Promise<void>;
}

async function usersFile(generation: number): Promise<string> {
  const salt = `s${generation}`;
  const hash = await hashPassword({ algorithm: 'sha256', saltPosition: 'prefix' }, soakUser.password, salt);
  const extra = Array.from({ length: 50 }, (_, i) => ({ username: `rotated-${generation}-${i}`, password_hash: hash, salt }));
  const acl = [
    ...(generation % 2 === 0 ? [] : [{ username: soakUser.username, permission: 'deny', action: 'all', topic: 'soak/toggle/#' }]),
    { username: soakUser.username, permission: 'allow', action: 'all', topic: 'soak/#' },
  ];
  return stringify({ users: [{ username: soakUser.username, password_hash: hash, salt }, ...extra], acl });
}

/** `nodeFlags`: flags for the broker's node process (e.g. `--max-semi-space-size=16`), to compare settings. */
export async function startSoakBroker(nodeFlags: string[] = []): Promise<SoakBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'enclave-soak-'));
  const users = join(dir, 'users.yaml');
  const rewriteUsers = async (generation: number): Promise<void> => {
    writeFileSync(`${users}.tmp`, await usersFile(generation));
    renameSync(`${users}.tmp`, users);
  };
  await rewriteUsers(0);
  const config = join(dir, 'broker.yaml');
  writeFileSync(config, stringify({
    name: 'soak',
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    admin: { host: '127.0.0.1', port: 0 },
    sources: { users: { type: 'builtin', dataFile: users } },
    authentication: { chain: ['users'], allowAnonymous: false },
    authorization: { chain: ['users'], noMatch: 'deny', denyAction: 'ignore' },
    logging: { level: 'info' },
  }));
  const child = spawn(process.execPath, [...nodeFlags, main, '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const started = await new Promise<{ port: number; admin: number }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (!line.includes('"broker started"')) return;
      const entry = JSON.parse(line) as { listeners: { port: number }[]; admin: number };
      resolve({ port: entry.listeners[0]!.port, admin: entry.admin });
    });
    void exited.then(() => reject(new Error('broker exited before it started')));
  });
  return {
    port: started.port,
    pid: child.pid!,
    rssMiB() {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return Number(m![1]) / 1024;
    },
    async scrape() {
      const res = await fetch(`http://127.0.0.1:${started.admin}/metrics`);
      const values = new Map<string, number>();
      for (const line of (await res.text()).split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        const at = line.lastIndexOf(' ');
        values.set(line.slice(0, at), Number(line.slice(at + 1)));
      }
      return values;
    },
    rewriteUsers,
    async stop() {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
