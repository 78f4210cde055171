// Test helpers for the auth chain (used by unit and integration auth tests): a chain over one or
// more sources with a log we can read, connect attempts, and real X.509 client certificates
// (openssl, test/support/pki.ts) turned into the VerifiedCertificate by the TLS listener's own
// certificateInfo (broker/listeners/cert-info.ts) — only after node's X509Certificate has verified
// them against the CA — so the x509 tests exercise the product's parsing, not a copy of it.
import { Writable } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import pino from 'pino';
import { Registry } from 'prom-client';
import { embeddedDefaultConfig, type BrokerConfig } from '../../../broker/config.ts';
import type { AuthSourceConfig } from '../../../broker/auth/config.ts';
import type { AuthenticatedClient, AuthHook, AuthorizationRequest, ConnectAttempt, VerifiedCertificate } from '../../../broker/auth/hook.ts';
import { createAuthChain } from '../../../broker/auth/chain.ts';
import { certificateInfo } from '../../../broker/listeners/cert-info.ts';
import { createCa, createLeaf } from '../../support/pki.ts';

export interface ChainUnderTest {
  hook: AuthHook;
  /** Every log line written so far (JSON text). */
  logs: string[];
  registry: Registry;
}

export interface ChainOptions {
  authn?: string[];
  authz?: string[];
  allowAnonymous?: boolean;
  noMatch?: 'allow' | 'deny';
  cache?: boolean;
  now?: () => number;
}

export async function chainOf(sources: Record<string, AuthSourceConfig>, opts: ChainOptions = {}): Promise<ChainUnderTest> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString('utf8'));
      cb();
    },
  });
  const config: BrokerConfig = embeddedDefaultConfig();
  config.sources = sources;
  config.authentication = { chain: opts.authn ?? Object.keys(sources), allowAnonymous: opts.allowAnonymous ?? false };
  config.authorization = {
    chain: opts.authz ?? Object.keys(sources),
    noMatch: opts.noMatch ?? 'deny',
    denyAction: 'ignore',
    cache: { enabled: opts.cache ?? true, maxSize: 32, ttlSeconds: 60 },
  };
  config.logging.accessLog = true;
  const registry = new Registry();
  const hook = await createAuthChain(config, {
    logger: pino({ level: 'debug' }, sink),
    metrics: { registry },
    fileWatchIntervalMs: 50,
    ...(opts.now ? { now: opts.now } : {}),
  });
  return { hook, logs, registry };
}

export type AttemptInput = Partial<Omit<ConnectAttempt, 'password'>> & { password?: Buffer | string | undefined };

export function attempt(over: AttemptInput = {}): ConnectAttempt {
  const { password, ...rest } = over;
  return {
    clientId: 'c-1',
    username: undefined,
    peerHost: '127.0.0.1',
    listener: 'default',
    protocolVersion: 5,
    certificate: undefined,
    ...rest,
    password: typeof password === 'string' ? Buffer.from(password, 'utf8') : password,
  };
}

/** The identity the broker keeps after a successful authentication. */
export function clientOf(a: ConnectAttempt, result: Awaited<ReturnType<AuthHook['authenticate']>>): AuthenticatedClient {
  if (result.outcome !== 'allow') throw new Error(`expected allow, got deny (${result.reason})`);
  const { password: _pw, ...rest } = a;
  return { attempt: rest, superuser: result.superuser, acl: result.acl };
}

export const pub = (topic: string, qos: 0 | 1 | 2 = 0, retain = false): AuthorizationRequest => ({ action: 'publish', topic, qos, retain });
export const sub = (topic: string, qos: 0 | 1 | 2 = 0): AuthorizationRequest => ({ action: 'subscribe', topic, qos, retain: false });

// ---- real certificates (openssl, via test/support/pki.ts) ---------------------------------

export interface TestPki {
  caPem: string;
  issue(commonName: string, opts?: { organizations?: string[]; altNames?: string[] }): Promise<{ pem: string; keyFile: string; certFile: string; verified: VerifiedCertificate }>;
}

export async function createTestPki(dir: string): Promise<TestPki> {
  const ca = await createCa(dir, 'auth-test-ca', 'Enclave Auth Test CA');
  const caNode = new X509Certificate(await readFile(ca.cert));
  let n = 0;
  return {
    caPem: caNode.toString(),
    async issue(commonName, opts = {}) {
      const pair = await createLeaf(dir, `leaf-${n++}`, ca, { commonName, usage: 'clientAuth', ...opts });
      const pem = await readFile(pair.cert, 'utf8');
      const node = new X509Certificate(pem);
      if (!node.verify(caNode.publicKey)) throw new Error('test certificate does not verify against its CA');
      return { pem, keyFile: pair.key, certFile: pair.cert, verified: certificateInfo(node) };
    },
  };
}
