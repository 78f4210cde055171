// `npm start` as a user runs it (scripts/start.ts on Node 24): --help and bad input give a clear
// message and the right exit code; local mode brings up the control plane, a real node, the
// operator and both quickstart tenants — `kubectl get nodes,pods -A` shows the node Ready and the
// broker pods Running, both MqttDeployments READY True — the printed mosquitto_sub / mosquitto_pub
// lines work when pasted into a shell, and Ctrl-C stops everything and leaves the machine as it
// found it: no process, temp directory, iptables chain, ipset, bridge, mount, cgroup or sysctl left.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostSnapshot } from '../support/node/host.ts';
import { freePort } from '../support/process.ts';
import { repoRoot } from '../support/paths.ts';
import { eventually, sleep } from '../support/wait.ts';

const REPO = repoRoot;
const NODE = join(REPO, 'node_modules/.bin/node');
const START = join(REPO, 'scripts/start.ts');

interface Run { code: number | null; stdout: string; stderr: string }

function start(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    const clean = { ...process.env, ...env };
    if (!('KUBECONFIG' in env)) delete clean.KUBECONFIG;
    execFile(NODE, [START, ...args], { cwd: REPO, env: clean, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

function sh(line: string, timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', line], { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

/** Processes whose command line mentions `needle` (what "nothing left running" means here). */
function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(needle)) found.push(`${pid}: ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe('npm start: flags and errors', () => {
  it('--help explains both modes and exits 0', async () => {
    const r = await start(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Cluster mode \(--kubeconfig or \$KUBECONFIG set\)/);
    expect(r.stdout).toMatch(/Local mode \(no kubeconfig, needs root\)/);
  });

  it('an unknown flag names the flag and exits non-zero', async () => {
    const r = await start(['--frobnicate']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("unknown option '--frobnicate'");
  });

  it('a missing kubeconfig file is refused with its path', async () => {
    const r = await start(['--kubeconfig', '/nonexistent/kubeconfig']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('kubeconfig file /nonexistent/kubeconfig does not exist');
  });

  it('an unreachable cluster is reported as unreachable, exit 1', async () => {
    const port = await freePort();
    const path = join(tmpdir(), `enclave-unreachable-${process.pid}.kubeconfig`);
    writeFileSync(path, [
      'apiVersion: v1', 'kind: Config', 'current-context: c',
      'clusters: [{name: c, cluster: {server: "https://127.0.0.1:' + port + '", insecure-skip-tls-verify: true}}]',
      'users: [{name: u, user: {token: t}}]', 'contexts: [{name: c, context: {cluster: c, user: u}}]', '',
    ].join('\n'));
    const r = await start([], { KUBECONFIG: path });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`enclave: error: the cluster at https://127.0.0.1:${port} is unreachable`);
  });
});

describe('npm start: local mode', () => {
  it('runs two tenants whose printed mosquitto lines work, and Ctrl-C leaves nothing running', async () => {
    const env = { ...process.env };
    delete env.KUBECONFIG;
    const before = await hostSnapshot();
    const child = spawn(NODE, [START], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    try {
      // Ready, or fail at once if it exited (its stderr says why).
      await Promise.race([
        eventually('npm start is ready', async () => out.includes('Press Ctrl-C to stop everything.'), 420_000),
        exited.then((code) => Promise.reject(new Error(`npm start exited ${code} before it was ready: ${err}`))),
      ]);
      // Step-by-step progress, then per tenant its endpoints and the lines to paste.
      for (const n of [1, 2, 3, 4, 5]) expect(out).toContain(`enclave: [${n}/5]`);
      const runDir = /export KUBECONFIG=(\S+)\/kube\/admin\.kubeconfig/.exec(out)?.[1]; // <run dir>/kube/admin.kubeconfig
      expect(runDir, out).toBeDefined();
      // What a user sees with the printed kubectl: the node Ready, the brokers real pods, tenants Ready.
      const kubectlLine = /^ {2}kubectl: +(\S+) get mqttdeployments -A$/m.exec(out)?.[1];
      expect(kubectlLine, out).toBeDefined();
      const kenv = `KUBECONFIG=${runDir!}/kube/admin.kubeconfig`;
      const nodesPods = await sh(`${kenv} ${kubectlLine!} get nodes,pods -A -o wide`);
      console.log(`[npm start] kubectl get nodes,pods -A -o wide\n${nodesPods.stdout}`);
      expect(nodesPods.stdout).toMatch(/^node\/\S+ +Ready /m);
      const brokerPods = nodesPods.stdout.split('\n').filter((l) => /^enclave-\S+ +pod\/broker-/.test(l));
      expect(brokerPods, nodesPods.stdout).toHaveLength(2);
      for (const line of brokerPods) expect(line).toMatch(/ 1\/1 +Running +0 /);
      const mds = await sh(`${kenv} ${kubectlLine!} get mqttdeployments -A`);
      console.log(`[npm start] kubectl get mqttdeployments -A\n${mds.stdout}`);
      const rows = mds.stdout.trim().split('\n').slice(1);
      expect(rows).toHaveLength(2);
      for (const row of rows) expect(row.split(/\s+/)[2], row).toBe('True');
      for (const tenant of ['team-a', 'team-b']) {
        const sub = new RegExp(`^  (mosquitto_sub .*'${tenant}/#' -v)$`, 'm').exec(out)?.[1];
        const pub = new RegExp(`^  (mosquitto_pub .*'${tenant}/hello'.*)$`, 'm').exec(out)?.[1];
        expect(sub, `${tenant} lines in:\n${out}`).toBeDefined();
        expect(pub).toBeDefined();
        const received = sh(`${sub!} -C 1 -W 10`);
        await sleep(700); // the subscriber's SUBACK
        expect((await sh(pub!)).code).toBe(0);
        const got = await received;
        expect(got.code, got.stderr).toBe(0);
        expect(got.stdout.trim()).toBe(`${tenant}/hello hi from ${tenant}`);
      }
      // Ctrl-C
      child.kill('SIGINT');
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000))]);
      expect(code).toBe(0);
      expect(out).toContain('enclave: stopped, nothing left running');
      expect(existsSync(runDir!)).toBe(false);
      expect(processesMentioning(runDir!)).toEqual([]);
      expect(await hostSnapshot()).toEqual(before);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 600_000);
});
