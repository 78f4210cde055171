// TLS material of a listener: read from files, and re-read when they change on disk. A mounted
// Secret is replaced by swapping the `..data` symlink, so the DIRECTORY is watched (a watch on the
// file itself would stay on the old inode). New handshakes get the new material; open connections
// keep theirs.
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import type { ListenerTlsConfig } from '../config.ts';

export async function readTlsMaterial(tls: ListenerTlsConfig): Promise<SecureContextOptions> {
  const read = async (file: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new Error(`cannot read TLS ${what} ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const [cert, key, ca] = await Promise.all([
    read(tls.certFile, 'certificate'),
    read(tls.keyFile, 'key'),
    tls.clientCaFile === undefined ? Promise.resolve(undefined) : read(tls.clientCaFile, 'client CA'),
  ]);
  return ca === undefined ? { cert, key } : { cert, key, ca };
}

/** Calls `reload` (debounced) whenever a directory holding one of the files changes. */
export function watchTlsMaterial(tls: ListenerTlsConfig, reload: () => void): () => void {
  const dirs = new Set([tls.certFile, tls.keyFile, tls.clientCaFile].filter((f): f is string => f !== undefined).map((f) => dirname(f)));
  let timer: NodeJS.Timeout | undefined;
  const watchers: FSWatcher[] = [];
  for (const dir of dirs) {
    try {
      const w = watch(dir, () => {
        clearTimeout(timer);
        timer = setTimeout(reload, 200);
      });
      w.on('error', () => undefined);
      watchers.push(w);
    } catch {
      // A directory that cannot be watched just means no hot reload for it.
    }
  }
  return () => {
    clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
