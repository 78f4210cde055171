// Owns the host-global state a node leaves behind, which no process stop undoes by itself: the
// guard rules that keep pod traffic inside the machine, iptables chains and ipsets (kubelet,
// kube-proxy, kube-router), the bridge, mounts (kubelet's root dir, pod network namespaces,
// overlay snapshots), the kubepods cgroups in every hierarchy, the sysctls kubelet, kube-proxy and
// the bridge plugin turn on, and the fixed paths they create. `hostSnapshot()` is what a teardown is
// compared against; `restoreHost()` undoes everything, and is safe to run twice.
import { existsSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BRIDGE, POD_CIDR } from '../node-network.ts';
import { run } from '../run.ts';

const GUARD_FORWARD = 'ENCLAVE-NODE-FORWARD';
const GUARD_INPUT = 'ENCLAVE-NODE-INPUT';
/** Chains the node's components create (ours, kubelet's, kube-proxy's, kube-router's). */
const NODE_CHAIN = /^(ENCLAVE-NODE-|KUBE-)/;

/** Sysctls the node changes (bridge plugin: forwarding; kube-proxy: route_localnet; kubelet: the rest). */
const SYSCTLS = [
  'net/ipv4/ip_forward',
  'net/ipv4/conf/all/route_localnet',
  'net/ipv6/conf/all/forwarding',
  'net/bridge/bridge-nf-call-iptables',
  'net/bridge/bridge-nf-call-ip6tables',
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

/** Paths outside the node directory that kubelet, containerd and CNI hard-code. */
export const FIXED_PATHS = ['/var/lib/kubelet', '/var/log/containers', '/var/log/pods', '/var/lib/cni', '/run/containerd', '/etc/cni', '/opt/cni', '/run/netns'];

export interface HostSnapshot {
  chains: string[];
  ipsets: string[];
  links: string[];
  mounts: string[];
  cgroups: string[];
  sysctls: Record<string, string>;
  paths: string[];
  processes: string[];
}

function readSysctl(name: string): string | undefined {
  try {
    return readFileSync(join('/proc/sys', name), 'utf8').trim();
  } catch {
    return undefined;
  }
}

async function chainNames(): Promise<string[]> {
  const out: string[] = [];
  for (const cmd of ['iptables-save', 'ip6tables-save']) {
    const r = await run(cmd, []);
    let table = '';
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      else if (line.startsWith(':')) out.push(`${cmd}/${table}/${line.slice(1).split(' ')[0]}`);
    }
  }
  return out.sort();
}

function kubepodsCgroups(): string[] {
  const root = '/sys/fs/cgroup';
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((h) => ['kubepods', 'kubepods.slice'].map((k) => join(root, h, k))).filter((p) => existsSync(p)).sort();
}

/** Processes of the node's programs (by executable name), as "name" strings. */
function nodeProcesses(): string[] {
  const names = new Set(['kubelet', 'containerd', 'containerd-shim', 'containerd-shim-runc-v2', 'kube-proxy', 'kube-router', 'kube-scheduler', 'coredns', 'pause']);
  const found: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      // A zombie is gone in all but name (this sandbox's PID 1 may never reap it).
      const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
      if (names.has(comm) && state !== 'Z') found.push(comm);
    } catch {
      // exited meanwhile
    }
  }
  return found.sort();
}

export async function hostSnapshot(nodeDir?: string): Promise<HostSnapshot> {
  const ipsets = await run('ipset', ['list', '-n']);
  const links = await run('ip', ['-o', 'link', 'show']);
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.includes('kubelet') || m.includes('containerd') || m.includes('/netns') || (nodeDir !== undefined && m.startsWith(nodeDir)));
  return {
    chains: await chainNames(),
    ipsets: ipsets.stdout.split('\n').filter(Boolean).sort(),
    links: links.stdout.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '').filter(Boolean).sort(),
    mounts: mounts.sort(),
    cgroups: kubepodsCgroups(),
    sysctls: Object.fromEntries(SYSCTLS.map((s) => [s, readSysctl(s) ?? '(absent)'])),
    paths: FIXED_PATHS.filter((p) => existsSync(p)),
    processes: nodeProcesses(),
  };
}

async function ipt(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, ['-w', '5', ...args]);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
}

/**
 * Guard rules: nothing routed from the pod bridge may leave it (pods have no default route either),
 * and the API server's port (it listens on every address so pods can reach it on the bridge) answers
 * loopback and the bridge only.
 */
export async function installGuards(apiPort: number): Promise<void> {
  await ipt('iptables', ['-N', GUARD_FORWARD]);
  await ipt('iptables', ['-A', GUARD_FORWARD, '-i', BRIDGE, '!', '-o', BRIDGE, '-j', 'DROP']);
  await ipt('iptables', ['-A', GUARD_FORWARD, '-s', POD_CIDR, '!', '-o', BRIDGE, '-j', 'DROP']);
  await ipt('iptables', ['-I', 'FORWARD', '1', '-j', GUARD_FORWARD]);
  await ipt('iptables', ['-N', GUARD_INPUT]);
  await ipt('iptables', ['-A', GUARD_INPUT, '-i', 'lo', '-j', 'RETURN']);
  await ipt('iptables', ['-A', GUARD_INPUT, '-i', BRIDGE, '-j', 'RETURN']);
  await ipt('iptables', ['-A', GUARD_INPUT, '-p', 'tcp', '--dport', String(apiPort), '-j', 'DROP']);
  await ipt('iptables', ['-I', 'INPUT', '1', '-j', GUARD_INPUT]);
}

/** iptables-save minus every node chain and every rule that is in or jumps to one, restored atomically. */
async function dropNodeChains(save: string, restore: string): Promise<void> {
  const r = await run(save, []);
  if (r.code !== 0) return;
  if (!r.stdout.split('\n').some((l) => /^:(ENCLAVE-NODE-|KUBE-)/.test(l))) return;
  const kept = r.stdout.split('\n').filter((line) => {
    if (line.startsWith(':')) return !NODE_CHAIN.test(line.slice(1));
    if (!line.startsWith('-A ')) return true;
    const chain = line.split(' ')[1] ?? '';
    if (NODE_CHAIN.test(chain)) return false;
    return !/ -[jg] (ENCLAVE-NODE-|KUBE-)/.test(line);
  });
  const out = await run(restore, ['-w', '5'], { input: kept.join('\n') + '\n' });
  if (out.code !== 0) throw new Error(`${restore}: ${out.stderr.trim()}`);
}

function rmdirTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    try {
      if (statSync(p).isDirectory()) rmdirTree(p);
    } catch {
      // gone meanwhile
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    // a cgroup with a process left: reported by the snapshot comparison
  }
}

/** Unmounts everything at or under `prefix`, deepest first. */
async function unmountUnder(prefix: string): Promise<void> {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m === prefix || m.startsWith(`${prefix}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', ['-l', m]);
}

export interface RestoreOptions {
  nodeDir: string;
  /** The snapshot taken before the node started: what to restore sysctls and fixed paths to. */
  before: HostSnapshot;
}

/** Undoes every host-global change of the node (its processes must be stopped first). */
export async function restoreHost(opts: RestoreOptions): Promise<void> {
  await unmountUnder(opts.nodeDir);
  for (const p of ['/run/netns', '/var/lib/kubelet']) if (!opts.before.paths.includes(p)) await unmountUnder(p);
  await dropNodeChains('iptables-save', 'iptables-restore');
  await dropNodeChains('ip6tables-save', 'ip6tables-restore');
  const sets = await run('ipset', ['list', '-n']);
  for (const name of sets.stdout.split('\n').filter(Boolean)) {
    if (!opts.before.ipsets.includes(name)) await run('ipset', ['destroy', name]);
  }
  const links = await run('ip', ['-o', 'link', 'show']);
  for (const line of links.stdout.split('\n')) {
    const name = line.split(':')[1]?.trim().split('@')[0];
    if (name && !opts.before.links.includes(name) && (name === BRIDGE || name.startsWith('veth') || name.startsWith('kube-') || name === 'dummy0')) {
      await run('ip', ['link', 'delete', name]);
    }
  }
  for (const cg of kubepodsCgroups()) rmdirTree(cg);
  for (const [name, value] of Object.entries(opts.before.sysctls)) {
    if (value === '(absent)' || readSysctl(name) === value) continue;
    try {
      writeFileSync(join('/proc/sys', name), value);
    } catch {
      // not writable here: the snapshot comparison reports it
    }
  }
  for (const p of FIXED_PATHS) if (!opts.before.paths.includes(p)) await rm(p, { recursive: true, force: true });
}

/**
 * What a node killed without its teardown (SIGKILL, a crash) leaves in the way of the next one: its
 * chains, ipsets and bridge. Only when no node program runs on the machine (one node per machine).
 */
export async function sweepStaleNode(): Promise<void> {
  if (nodeProcesses().some((p) => p === 'kubelet' || p === 'containerd' || p === 'kube-router')) {
    throw new Error('another node runs on this machine (kubelet, containerd or kube-router is running): one node per machine');
  }
  await dropNodeChains('iptables-save', 'iptables-restore');
  await dropNodeChains('ip6tables-save', 'ip6tables-restore');
  const sets = await run('ipset', ['list', '-n']);
  for (const name of sets.stdout.split('\n').filter((n) => /^(KUBE-|kube-router)/i.test(n))) await run('ipset', ['destroy', name]);
  await run('ip', ['link', 'delete', BRIDGE]);
}
