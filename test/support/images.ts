// Owns building and running the images without a container engine: buildah with the vfs storage
// driver and chroot isolation (Debian's buildah, run as root), a local stand-in base image
// (images/local-base.sh), and "run from the image" as unshare + read-only bind mount + chroot
// with a numeric UID — the read-only root filesystem and non-root user the chart asks for.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, run, type RunResult } from '../helm/helm.ts';

export const store = process.env.ENCLAVE_IMAGE_STORE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'enclave', 'images');
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
