// Owns building the images without a container engine: buildah with the vfs storage driver and
// chroot isolation (Debian's buildah, run as root), a local stand-in base image
// (images/local-base.sh), the broker and operator images from their published Dockerfiles (tagged
// by a hash of their sources, so an unchanged tree reuses the cached build), the test node's own
// images (pause sandbox from a static C binary, CoreDNS from its static Go binary, Redis from the
// machine's redis-server and its libraries), exporting them
// for the node's containerd, and "run from the image" as unshare + read-only bind mount + chroot
// with a numeric UID.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { binDir, cacheDir, repoRoot } from './paths.ts';
import { run, type RunResult } from './run.ts';

export const store = process.env.ENCLAVE_IMAGE_STORE ?? join(cacheDir(), 'images');
export const localBase = 'localhost/enclave-node-base:24';

export function buildahAvailable(): boolean {
  return ['/usr/bin/buildah', '/usr/sbin/debootstrap'].every((p) => existsSync(p)) && process.getuid?.() === 0;
}

export async function buildah(args: string[], timeoutMs = 900_000): Promise<RunResult> {
  const r = await run('buildah', ['--root', join(store, 'storage'), '--runroot', join(store, 'run'), '--storage-driver', 'vfs', ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(`buildah ${args.join(' ')} exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  return r;
}

export async function ensureLocalBase(): Promise<void> {
  const r = await run('bash', [join(repoRoot, 'images', 'local-base.sh')], { timeoutMs: 900_000, env: { ENCLAVE_IMAGE_STORE: store } });
  if (r.code !== 0) throw new Error(`images/local-base.sh exited ${r.code}:\n${r.stderr.slice(-4000)}`);
}

/** `buildah build` of one of our Dockerfiles on the local base; returns the build's wall time. */
export async function buildImage(dockerfile: string, tag: string): Promise<number> {
  const t0 = Date.now();
  await buildah([
    'build', '--isolation', 'chroot', '--layers=false', '--pull=never',
    '--build-arg', `NODE_IMAGE=${localBase}`, '--build-arg', 'REVISION=test', '--build-arg', 'CREATED=1970-01-01T00:00:00Z',
    '-f', join(repoRoot, dockerfile), '-t', tag, repoRoot,
  ]);
  const ms = Date.now() - t0;
  // The tag moved to the new image: the previous run's image (and this build's stage images) are
  // dangling now. vfs keeps full copies, so without this the cached store grows ~0.4 GB per image
  // per run. Best effort: an image a live working container still uses is simply kept.
  await run('buildah', ['--root', join(store, 'storage'), '--runroot', join(store, 'run'), '--storage-driver', 'vfs', 'rmi', '--prune'], { timeoutMs: 300_000 });
  return ms;
}

export interface ImageConfig {
  User?: string;
  Entrypoint?: string[];
  Env?: string[];
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, object>;
}

export async function imageConfig(tag: string): Promise<ImageConfig> {
  const r = await buildah(['inspect', '--type', 'image', tag]);
  return (JSON.parse(r.stdout) as { OCIv1: { config: ImageConfig } }).OCIv1.config;
}

const units: Record<string, number> = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9 };

/** Bytes of the image as buildah reports it ("367 MB": decimal units, go-units HumanSize). */
export async function imageSize(tag: string): Promise<number> {
  const r = await buildah(['images', '--json', tag]);
  const [img] = JSON.parse(r.stdout) as { size: string }[];
  const m = /^([\d.]+)\s*([kKMG]?B)$/.exec(img?.size ?? '');
  if (!m?.[1] || !m[2]) throw new Error(`buildah images: unexpected size "${img?.size}" for ${tag}`);
  return Number(m[1]) * (units[m[2]] ?? NaN);
}

/** A working container of `tag` with its root filesystem mounted on the host. */
export async function mountImage(tag: string): Promise<{ root: string; remove(): Promise<void> }> {
  const ctr = (await buildah(['from', '--pull=never', tag])).stdout.trim();
  const root = (await buildah(['mount', ctr])).stdout.trim();
  return { root, remove: async () => void (await buildah(['rm', ctr])) };
}

/**
 * Runs `argv` from the mounted image `root`: private mount namespace, root bind-mounted
 * read-only, /proc and /dev provided, /tmp a tmpfs (the chart's emptyDir), as uid:gid from the
 * image's USER, with the image's environment.
 */
export function runFromImage(root: string, user: string, env: string[], argv: string[]): ChildProcess {
  const script = [
    'set -e',
    'root=$1; user=$2; shift 2',
    'mount --bind "$root" "$root"',
    'mount -o remount,bind,ro "$root"',
    'mount -t proc proc "$root/proc"',
    'mount --rbind /dev "$root/dev"',
    'mount -t tmpfs -o size=64m tmpfs "$root/tmp"',
    'exec chroot --userspec="$user" "$root" "$@"',
  ].join('\n');
  return spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', root, user, 'env', '-i', ...env, ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Files whose content decides an image built from our Dockerfiles (what the Dockerfiles COPY). */
const IMAGE_INPUTS = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'operator', 'broker', 'images'];

function listFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).sort().flatMap((name) => listFiles(join(path, name)));
}

/** A short hash of everything our images are built from: the tag of the cached build. */
export function sourceHash(): string {
  const h = createHash('sha256');
  for (const file of IMAGE_INPUTS.flatMap((p) => listFiles(join(repoRoot, p)))) {
    h.update(relative(repoRoot, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return h.digest('hex').slice(0, 12);
}

async function imageExists(tag: string): Promise<boolean> {
  const r = await run('buildah', ['--root', join(store, 'storage'), '--runroot', join(store, 'run'), '--storage-driver', 'vfs', 'inspect', '--type', 'image', tag]);
  return r.code === 0;
}

export interface NodeImages {
  broker: string;
  operator: string;
  pause: string;
  coredns: string;
  /** The managed state backend's Redis (spec.state.redis.managed). */
  redis: string;
}

/** The sandbox image: PID 1 that sleeps, reaps children and exits 0 on SIGTERM/SIGINT. */
const PAUSE_C = `#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGTERM, stop); signal(SIGINT, stop); signal(SIGCHLD, reap);
  for (;;) pause();
}
`;

async function fromScratch(tag: string, files: { src: string; dest: string }[], config: string[]): Promise<void> {
  const ctr = (await buildah(['from', 'scratch'])).stdout.trim();
  try {
    for (const f of files) await buildah(['copy', '--chmod', '0755', ctr, f.src, f.dest]);
    await buildah(['config', ...config, ctr]);
    await buildah(['commit', '--rm', ctr, tag]);
  } catch (err) {
    await run('buildah', ['--root', join(store, 'storage'), '--runroot', join(store, 'run'), '--storage-driver', 'vfs', 'rm', ctr]);
    throw err;
  }
}

async function ensurePause(): Promise<string> {
  const tag = 'localhost/enclave-pause:1';
  if (await imageExists(tag)) return tag;
  const dir = join(cacheDir(), 'src', 'pause');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'pause.c'), PAUSE_C);
  const cc = await run('gcc', ['-static', '-Os', '-o', join(dir, 'pause'), join(dir, 'pause.c')]);
  if (cc.code !== 0) throw new Error(`building the pause binary failed (gcc and libc6-dev are needed):\n${cc.stderr}`);
  await fromScratch(tag, [{ src: join(dir, 'pause'), dest: '/pause' }], ['--entrypoint', '["/pause"]', '--user', '65535:65535']);
  return tag;
}

async function ensureCoreDns(): Promise<string> {
  const version = readFileSync(join(binDir(), '.coredns.version'), 'utf8').trim();
  const tag = `localhost/enclave-coredns:${version}`;
  if (await imageExists(tag)) return tag;
  await fromScratch(tag, [{ src: join(binDir(), 'coredns'), dest: '/coredns' }], ['--entrypoint', '["/coredns"]']);
  return tag;
}

/**
 * Redis for the managed state backend: this machine's Debian redis-server with exactly the shared
 * libraries it loads (ldd), from scratch — the stand-in for a public Redis image where no registry
 * can be pulled from. Tagged with the binary's version.
 */
export async function ensureRedis(): Promise<string> {
  const bin = '/usr/bin/redis-server';
  const version = /v=([\d.]+)/.exec((await run(bin, ['--version'])).stdout)?.[1];
  if (!version) throw new Error(`${bin} --version: no version (apt-get install redis-server)`);
  const tag = `localhost/enclave-redis:${version}`;
  if (await imageExists(tag)) return tag;
  const ldd = await run('ldd', [bin]);
  const libs = [...ldd.stdout.matchAll(/(\/\S+\.so[.\d]*) \(0x/g)].map((m) => m[1]!);
  const files = [bin, ...libs].map((src) => ({ src: realpathSync(src), dest: src }));
  await fromScratch(tag, files, ['--entrypoint', `["${bin}"]`, '--user', '65532:65532']);
  return tag;
}

/** Drops older source-hash builds of `repo` so the cached vfs store keeps one build per image. */
async function pruneOldBuilds(repo: string, keep: string): Promise<void> {
  const r = await buildah(['images', '--json']);
  const images = JSON.parse(r.stdout || '[]') as { id: string; names?: string[] }[];
  for (const img of images) {
    const names = img.names ?? [];
    if (names.some((n) => n.startsWith(`${repo}:src-`)) && !names.includes(keep)) {
      await run('buildah', ['--root', join(store, 'storage'), '--runroot', join(store, 'run'), '--storage-driver', 'vfs', 'rmi', '-f', img.id]);
    }
  }
}

async function ensureFromDockerfile(repo: string, dockerfile: string, hash: string): Promise<string> {
  const tag = `${repo}:src-${hash}`;
  if (await imageExists(tag)) return tag;
  await buildImage(dockerfile, tag);
  await pruneOldBuilds(repo, tag);
  return tag;
}

/**
 * Every image the test node runs, built (or found in the cache) under tags that change with their
 * inputs: broker and operator from the published Dockerfiles, pause and CoreDNS from scratch.
 */
export async function ensureNodeImages(log: (line: string) => void = () => {}): Promise<NodeImages> {
  const t0 = Date.now();
  await ensureLocalBase();
  const hash = sourceHash();
  // One at a time: two vfs builds at once double the disk traffic on a 2-core machine for no gain.
  const broker = await ensureFromDockerfile('localhost/enclave-broker', 'images/broker/Dockerfile', hash);
  const operator = await ensureFromDockerfile('localhost/enclave-operator', 'images/operator/Dockerfile', hash);
  const pause = await ensurePause();
  const coredns = await ensureCoreDns();
  const redis = await ensureRedis();
  log(`images ready in ${Date.now() - t0} ms (broker ${broker}, operator ${operator})`);
  return { broker, operator, pause, coredns, redis };
}

/**
 * A docker-archive of `tag` for \`ctr images import\`, cached next to the image store (exporting
 * from vfs is the slow part) and named after the tag, so a changed image gets a new archive.
 */
export async function exportImage(tag: string): Promise<string> {
  const dir = join(store, 'archives');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${tag.replace(/[^a-zA-Z0-9.-]+/g, '_')}.tar`);
  if (existsSync(file)) return file;
  const repo = tag.slice(0, tag.lastIndexOf(':'));
  for (const old of readdirSync(dir)) {
    if (old.startsWith(`${repo.replace(/[^a-zA-Z0-9.-]+/g, '_')}_`) && join(dir, old) !== file) await rm(join(dir, old), { force: true });
  }
  await buildah(['push', tag, `docker-archive:${file}.partial:${tag}`]);
  await run('mv', [`${file}.partial`, file]);
  return file;
}
