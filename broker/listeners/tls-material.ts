// TLS material of a listener: read from files, and re-read when they change on disk (one reload
// path for the mqtts, wss listeners). New handshakes get the new material; open connections keep theirs.
import { readFile } from 'node:fs/promises';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { ListenerTlsConfig } from '../config.ts';
import { DEFAULT_WATCH_INTERVAL_MS, watchMountedFiles } from '../mounted-files.ts';

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

/** Where a reload is reported, and the listener's TLS options the new material goes with. */
export interface TlsReloadContext {
  log: Logger;
  options: TlsOptions;
}

/**
 * Re-reads the listener's certificate, key and client CA when one of the files changes
 * (mounted-files.ts: polling, which sees a Secret's `..data` swap) and hands new handshakes the
 * new material; open connections keep theirs. Material that cannot be read keeps the old one.
 * Returns stop.
 */
export function reloadTlsOnChange(
  server: { setSecureContext(options: SecureContextOptions): void }, listener: string, tls: ListenerTlsConfig, ctx: TlsReloadContext,
): () => void {
  const files = [tls.certFile, tls.keyFile, tls.clientCaFile].filter((f): f is string => f !== undefined);
  return watchMountedFiles(files, () => {
    readTlsMaterial(tls).then((material) => {
      server.setSecureContext({ ...ctx.options, ...material });
      ctx.log.info({ listener }, 'TLS material reloaded');
    }, (err: unknown) => ctx.log.error({ listener, err: (err as Error).message }, 'TLS reload failed; keeping the old material'));
  }, DEFAULT_WATCH_INTERVAL_MS, 200);
}
