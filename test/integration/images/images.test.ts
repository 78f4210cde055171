// Both Dockerfiles built for real (buildah, vfs, chroot isolation, on the local stand-in for
// node:24-bookworm-slim): non-root numeric USER, entrypoint, OCI labels, no dev dependencies and
// no package manager in the final image, the image size; and the broker started from the image's
// own filesystem — read-only root, UID 65532 — serving MQTT.
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { eventually } from '../../support/wait.ts';
import { world } from '../../support/world.ts';
import { buildahAvailable, ensureLocalBase, imageConfig, imageSize, localBase, mountImage, runFromImage } from '../../support/images.ts';

// The images the test node runs: built from the published Dockerfiles by the world before any test
// (test/support/images.ts), tagged by a hash of their sources.
const images = {
  operator: { tag: world().node.images.operator, entrypoint: ['node', '/app/dist/operator/main.js'] },
  broker: { tag: world().node.images.broker, entrypoint: ['node', '/app/dist/broker/main.js'] },
} as const;
const MB = 1e6;
const mounts: { remove(): Promise<void> }[] = [];

beforeAll(async () => {
  if (!buildahAvailable()) throw new Error('the image test needs root, buildah and debootstrap (apt-get install buildah debootstrap)');
  await ensureLocalBase();
}, 900_000);

afterAll(async () => {
  for (const m of mounts) await m.remove();
});

describe.each(Object.entries(images))('%s image', (name, img) => {
  it('builds from the published Dockerfile (base swapped for the local stand-in)', async () => {
    // The world built it for the node before any test ran; a missing image means that build failed.
    const config = await imageConfig(img.tag);
    expect(config.Entrypoint, `${name} image ${img.tag}`).toBeDefined();
  }, 900_000);

  it('runs as a numeric non-root user with the expected entrypoint and OCI labels', async () => {
    const config = await imageConfig(img.tag);
    expect(config.User).toBe('65532:65532');
    expect(config.Entrypoint).toEqual(img.entrypoint);
    expect(config.Env).toContain('NODE_ENV=production');
    for (const label of ['title', 'description', 'source', 'licenses', 'version', 'revision', 'created']) {
      expect(config.Labels?.[`org.opencontainers.image.${label}`], label).toBeTruthy();
    }
    expect(config.Labels?.['org.opencontainers.image.revision']).toBe('test');
  });

  it('ships production dependencies only, no package manager, and stays small', async () => {
    const m = await mountImage(img.tag);
    mounts.push(m);
    const has = (p: string) => existsSync(join(m.root, p));
    expect(has('app/node_modules/mqtt-packet')).toBe(true);
    expect(has('app/node_modules/@kubernetes/client-node')).toBe(true);
    for (const dev of ['vitest', 'typescript', 'eslint', 'aedes', 'mqtt', 'node', 'wasmoon']) expect(has(`app/node_modules/${dev}`), dev).toBe(false);
    for (const tool of ['usr/local/bin/npm', 'usr/local/bin/npx', 'usr/local/lib/node_modules/npm']) expect(has(tool), tool).toBe(false);
    expect(has(img.entrypoint[1].slice(1)), img.entrypoint[1]).toBe(true);
    // The base (Debian slim + Node 24) is most of it; what our Dockerfile adds is dist/ and the
    // production node_modules.
    const [size, base] = [await imageSize(img.tag), await imageSize(localBase)];
    console.log(`[images] ${name}: ${(size / MB).toFixed(0)} MB (${((size - base) / MB).toFixed(0)} MB over the base)`);
    expect(size).toBeLessThan(450 * MB);
    expect(size - base).toBeLessThan(150 * MB);
  });
});

describe('broker image', () => {
  it('starts from its own filesystem (read-only root, UID 65532) and serves MQTT', async () => {
    const m = await mountImage(images.broker.tag);
    mounts.push(m);
    const config = await imageConfig(images.broker.tag);
    const port = 20000 + (process.pid % 20000);
    const child = runFromImage(m.root, config.User ?? '', [...(config.Env ?? [])], [...images.broker.entrypoint, '--host', '127.0.0.1', '--port', String(port)]);
    let output = '';
    child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
    try {
      const client = await connectWithRetry(`mqtt://127.0.0.1:${port}`, () => output);
      await client.subscribeAsync('image/test');
      const got = new Promise<[string, Buffer]>((resolve) => client.once('message', (topic, payload) => resolve([topic, payload])));
      await client.publishAsync('image/test', 'from the image');
      const [topic, payload] = await got;
      expect([topic, payload.toString()]).toEqual(['image/test', 'from the image']);
      await client.endAsync();
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }, 60_000);
});

describe('operator image', () => {
  it('runs the uninstall guard from its own filesystem: its dependencies resolve under a read-only root', async () => {
    const m = await mountImage(images.operator.tag);
    mounts.push(m);
    const config = await imageConfig(images.operator.tag);
    // No API server is configured inside the chroot, so the guard gets as far as the request and
    // reports it — which proves the program and @kubernetes/client-node load from the image.
    const child = runFromImage(m.root, config.User ?? '', [...(config.Env ?? []), 'KUBERNETES_SERVICE_HOST=127.0.0.1', 'KUBERNETES_SERVICE_PORT=1'], ['node', '/app/uninstall-guard.js']);
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(stderr).toContain('uninstall-guard:');
    expect(stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
    expect(code).not.toBe(0);
  }, 60_000);
});

async function connectWithRetry(url: string, log: () => string): Promise<mqtt.MqttClient> {
  return eventually('the broker from the image accepts connections', () => mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 2000 }), 30_000, 300)
    .catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${log()}`, { cause: err });
    });
}
