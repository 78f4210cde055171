// The promise test/support makes to every integration test: services it starts always stop — the
// whole process group on stop(), and everything when the owning Node process is SIGKILLed.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, spawnService, waitUntilReady } from '../../support/process.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls until `pid` is gone (the kernel reaps asynchronously); false if it never goes. */
async function vanishes(pid: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (!alive(pid)) return true;
    await sleep(50);
  }
  return false;
}

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'enclave-proc-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('spawnService', () => {
  it('stop() kills the whole process group, grandchildren included', async () => {
    const dir = await tempDir();
    const pidFile = join(dir, 'grandchild.pid');
    const service = spawnService({
      name: 'forker',
      command: 'sh',
      args: ['-c', `sleep 300 & echo $! > ${pidFile}; wait`],
      logFile: join(dir, 'forker.log'),
    });
    let grandchild = 0;
    await waitUntilReady(service, async () => {
      grandchild = Number(await readFile(pidFile, 'utf8'));
      return grandchild > 0;
    });
    expect(alive(grandchild)).toBe(true);
    await service.stop();
    expect(alive(service.pid)).toBe(false);
    expect(await vanishes(grandchild)).toBe(true);
  });

  it('fails fast with the log tail when the service exits during startup', async () => {
    const dir = await tempDir();
    const service = spawnService({
      name: 'broken',
      command: 'sh',
      args: ['-c', 'echo "config error: port is required" >&2; exit 3'],
      logFile: join(dir, 'broken.log'),
    });
    await expect(waitUntilReady(service, async () => false)).rejects.toThrow(/broken exited during startup[\s\S]*port is required/);
  });

  it('services die with their owner even when the owner is SIGKILLed', async () => {
    const dir = await tempDir();
    const script = join(dir, 'owner.ts');
    const support = join(import.meta.dirname, '../../support/process.ts');
    await writeFile(
      script,
      `import { spawnService } from ${JSON.stringify(support)};\n` +
        `const s = spawnService({ name: 'sleeper', command: 'sleep', args: ['300'], logFile: ${JSON.stringify(join(dir, 's.log'))} });\n` +
        `console.log(s.pid);\nsetInterval(() => {}, 1000);\n`,
    );
    const owner = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const servicePid = await new Promise<number>((resolve) => owner.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    expect(alive(servicePid)).toBe(true);
    owner.kill('SIGKILL');
    expect(await vanishes(servicePid)).toBe(true);
  });
});

describe('freePort', () => {
  it('returns a port that can be bound on 127.0.0.1', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(1023);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });
});
