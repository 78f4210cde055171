#!/usr/bin/env node
// `node /app/dist/broker/purge-main.js --config FILE`: deletes every key of one deployment in its
// external state backend (SCAN + UNLINK under `state.redis.keyPrefix`, cluster/purge.ts) and exits
// 0. The operator runs it as a Job in the runtime namespace before it deletes that namespace: the
// operator's own pod may not reach tenants' backends, the broker's network policies let this pod do
// it. A config without a Redis backend has nothing to purge (exit 0). On failure: exit 1 with one
// line on stderr and in the termination log, which the operator quotes in the MqttDeployment's status,
// so it is the error's code or first line only, never a credential.
import { readFileSync, writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { loadBrokerConfig } from './config.ts';
import { linkConfig } from './cluster/config.ts';
import { reasonOf } from './cluster/link.ts';
import { purgePrefix } from './cluster/purge.ts';

function configPath(argv: string[]): string {
  const i = argv.indexOf('--config');
  const file = i >= 0 ? argv[i + 1] : undefined;
  if (file === undefined) throw new Error('usage: purge-main --config FILE');
  return file;
}

async function main(): Promise<void> {
  const config = await loadBrokerConfig(configPath(process.argv.slice(2)));
  if (config.state.backend !== 'redis') {
    process.stdout.write(`${JSON.stringify({ msg: 'No Redis state backend: nothing to purge' })}\n`);
    return;
  }
  const c = linkConfig(config.state.redis);
  const redis = new Redis({
    host: c.host, port: c.port, db: c.db ?? 0,
    ...(c.username !== undefined ? { username: c.username } : {}),
    ...(c.password !== undefined ? { password: c.password } : {}),
    ...(c.caFile !== undefined ? { tls: { ca: readFileSync(c.caFile), servername: c.tlsServerName ?? c.host } } : {}),
    connectionName: 'enclave-purge',
    connectTimeout: 5_000,
    maxRetriesPerRequest: 2,
    // A few reconnects, then give up: the Job's own retries and the operator's backoff take over.
    retryStrategy: (times: number) => (times > 5 ? null : times * 500),
  });
  // Reported by the failing command below; an unhandled 'error' event would crash with its text.
  redis.on('error', () => undefined);
  try {
    const deleted = await purgePrefix(redis, c.keyPrefix);
    process.stdout.write(`${JSON.stringify({ msg: 'Purged the state backend', keyPrefix: c.keyPrefix, deleted })}\n`);
  } finally {
    redis.disconnect();
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  const reason = `Purging the state backend failed: ${reasonOf(err)}`;
  process.stderr.write(`${reason}\n`);
  try {
    writeFileSync('/dev/termination-log', reason);
  } catch {
    // Not in a pod (a local run): stderr said it.
  }
  process.exit(1);
});
