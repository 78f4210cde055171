// Secret/ConfigMap volumes on local disk, laid out the way the kubelet does it: the files live in a
// timestamped `..<ts>` directory, `..data` is a symlink to it, and each key is a symlink
// `<key> -> ..data/<key>`. An update writes a new `..<ts>` dir and swaps `..data` atomically (rename
// of a temp symlink), so a process watching the directory or stat-polling a file sees one change and
// never a half-written set — exactly what the broker's hot reload expects in a real pod.
import { mkdir, readdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

let counter = 0;

/** Writes `files` (key → bytes) into `dir` with the kubelet's atomic `..data` layout; stale keys are removed. */
export async function writeAtomicVolume(dir: string, files: Record<string, Buffer>, mode = 0o600): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stamp = `..${new Date().toISOString().replace(/[:.]/g, '_')}.${process.pid}.${counter++}`;
  const payload = join(dir, stamp);
  await mkdir(payload, { mode: 0o700 });
  for (const [key, bytes] of Object.entries(files)) {
    if (key.includes('/') || key.startsWith('..')) throw new Error(`volume key "${key}" is not a plain file name`);
    await writeFile(join(payload, key), bytes, { mode });
  }
  let previous: string | undefined;
  try {
    previous = await readlink(join(dir, '..data'));
  } catch {
    previous = undefined;
  }
  const tmpLink = join(dir, '..data_tmp');
  await rm(tmpLink, { force: true });
  await symlink(stamp, tmpLink);
  await rename(tmpLink, join(dir, '..data'));
  const entries = await readdir(dir);
  for (const key of Object.keys(files)) {
    if (!entries.includes(key)) await symlink(join('..data', key), join(dir, key));
  }
  for (const entry of entries) {
    if (entry.startsWith('..')) continue;
    if (!(entry in files)) await rm(join(dir, entry), { force: true });
  }
  if (previous !== undefined && previous !== stamp) await rm(join(dir, previous), { recursive: true, force: true });
}

/** Base64 `data` (and plain `stringData`) of a Secret or ConfigMap as file bytes. */
export function volumeFiles(data: Record<string, string> | undefined, plain?: Record<string, string>, base64 = true): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(data ?? {})) out[k] = Buffer.from(v, base64 ? 'base64' : 'utf8');
  for (const [k, v] of Object.entries(plain ?? {})) out[k] = Buffer.from(v, 'utf8');
  return out;
}
