// The broker as a process: `enclave-broker` CLI, config errors, admin endpoints, SIGTERM drain.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../support/paths.ts';
import { eventually } from '../../support/wait.ts';
import { startTestBroker } from './helpers.ts';

const main = join(repoRoot, 'broker', 'main.ts');
const dir = mkdtempSync(join(tmpdir(), 'broker-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function runBroker(args: string[]): { exit: Promise<{ code: number | null; stderr: string; stdout: string }>; kill(sig: NodeJS.Signals): void; stdout: () => string } {
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return {
    exit: new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr, stdout }))),
    kill: (sig) => child.kill(sig),
    stdout: () => stdout,
  };
}

describe('enclave-broker CLI', () => {
  it('a bad config exits non-zero naming the path', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'listeners:\n  - {name: a, protocol: mqtt, port: 1883}\n  - {name: b, protocol: mqtt, port: 70000}\n');
    const { code, stderr } = await runBroker(['--config', file]).exit;
    expect(code).toBe(2);
    expect(stderr).toContain('listeners[1].port: must be <= 65535');
  });

  it('a missing config file exits non-zero with the reason', async () => {
    const { code, stderr } = await runBroker(['--config', join(dir, 'nope.yaml')]).exit;
    expect(code).toBe(2);
    expect(stderr).toContain('cannot read file');
  });

  it('embedded default with --port: anonymous allowed there; SIGTERM sends v5 clients 0x8B and exits 0', async () => {
    const port = await freePort();
    const b = runBroker(['--port', String(port)]);
    await eventually('the broker prints "broker started"', async () => b.stdout().includes('broker started'), 10_000, 50);
    const c = await mqtt.connectAsync({ host: '127.0.0.1', port, protocolVersion: 5, reconnectPeriod: 0 });
    const reason = new Promise<number | undefined>((r) => c.once('disconnect', (p) => r(p.reasonCode)));
    b.kill('SIGTERM');
    expect(await reason).toBe(0x8b);
    expect((await b.exit).code).toBe(0);
    await c.endAsync(true);
  });
});

describe('admin port', () => {
  it('/healthz, /readyz and /metrics', async () => {
    const tb = await startTestBroker();
    try {
      const base = `http://127.0.0.1:${tb.broker.adminPort!}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const c = await mqtt.connectAsync({ host: '127.0.0.1', port: tb.port, reconnectPeriod: 0 });
      await c.subscribeAsync('m/t');
      const got = new Promise((r) => c.once('message', r));
      await c.publishAsync('m/t', 'x', { qos: 1 });
      await got;
      const text = await (await fetch(`${base}/metrics`)).text();
      expect(text).toMatch(/enclave_broker_connections 1/);
      expect(text).toMatch(/enclave_broker_messages_received_total 1/);
      expect(text).toMatch(/enclave_broker_messages_sent_total 1/);
      expect(text).toContain('enclave_broker_publish_to_deliver_seconds_bucket');
      await c.endAsync();
    } finally {
      await tb.stop();
    }
  });
});
