// Owns reading mounted files (Secret keys, TLS material, a users file) and noticing when they
// change: the one watcher of the broker. Kubernetes updates a mounted Secret by writing a new
// timestamped directory and swapping the `..data` symlink to it atomically; the file names in the
// volume are symlinks through `..data`. So this polls stat() of each path: stat follows the
// symlinks, and the swap shows as a new inode (or mtime, size). fs.watch() would watch one inode
// (the old file, or a directory whose events differ between inotify, overlay and network
// filesystems) and miss or misreport the swap; polling sees it on every filesystem, within one
// interval. The interval is an argument for tests.
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';

/** Default polling interval of mounted files. */
export const DEFAULT_WATCH_INTERVAL_MS = 1000;

/**
 * Calls `onChange` once a burst of changes to any of `paths` is over (a Secret swap changes a
 * certificate and its key together: one call, `settleMs` after the last change seen). Returns stop.
 */
export function watchMountedFiles(paths: readonly string[], onChange: () => void, intervalMs = DEFAULT_WATCH_INTERVAL_MS, settleMs = 0): () => void {
  let timer: NodeJS.Timeout | undefined;
  const listener = (now: Stats, prev: Stats): void => {
    if (now.mtimeMs === prev.mtimeMs && now.size === prev.size && now.ino === prev.ino) return;
    if (settleMs === 0) {
      onChange();
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(onChange, settleMs);
  };
  for (const path of paths) watchFile(path, { interval: intervalMs, persistent: false }, listener);
  return () => {
    clearTimeout(timer);
    for (const path of paths) unwatchFile(path, listener);
  };
}

export interface WatchedFile {
  /** The content read most recently (trailing newline trimmed when `trim`). */
  current(): string;
  stop(): void;
}

export interface WatchOptions {
  intervalMs?: number;
  /** Trim whitespace (credential files usually end in a newline). Default true. */
  trim?: boolean;
}

/** Reads `path` now (throws a clear error if unreadable) and calls `onChange` after each change of its content. */
export function watchTextFile(path: string, onChange: (content: string) => void, opts: WatchOptions = {}): WatchedFile {
  const trim = opts.trim ?? true;
  const read = (): string => {
    try {
      const text = readFileSync(path, 'utf8');
      return trim ? text.trim() : text;
    } catch (err) {
      throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  let content = read();
  const stop = watchMountedFiles([path], () => {
    let next: string;
    try {
      next = read();
    } catch {
      return; // mid-swap or deleted: keep the last good content until the file is back
    }
    if (next === content) return;
    content = next;
    onChange(next);
  }, opts.intervalMs);
  return { current: () => content, stop };
}
