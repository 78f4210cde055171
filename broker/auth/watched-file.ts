// Owns reading a mounted file (Secret key, users file) and noticing when it changes. Kubernetes
// updates a mounted Secret by swapping a symlink, which inotify on the old inode misses, so this
// polls stat() (mtime, size, inode) of the resolved path; the interval is an argument for tests.
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';

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

/** Reads `path` now (throws a clear error if unreadable) and calls `onChange` after each change. */
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
  const listener = (now: Stats, prev: Stats): void => {
    if (now.mtimeMs === prev.mtimeMs && now.size === prev.size && now.ino === prev.ino) return;
    let next: string;
    try {
      next = read();
    } catch {
      return; // mid-swap or deleted: keep the last good content until the file is back
    }
    if (next === content) return;
    content = next;
    onChange(next);
  };
  watchFile(path, { interval: opts.intervalMs ?? 1000, persistent: false }, listener);
  return {
    current: () => content,
    stop: () => unwatchFile(path, listener),
  };
}

/** Reads an optional credential file once; used where a value may come inline or from a file. */
export function readOptionalFile(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}
