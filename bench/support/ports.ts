// What the benchmark runners share about the brokers they start: waiting until one listens.
import { connect } from 'node:net';

/** Resolves once 127.0.0.1:`port` accepts a TCP connection; gives up after `attempts` × 50 ms. */
export async function waitForPort(port: number, attempts = 200): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`broker on port ${port} did not start`);
}
