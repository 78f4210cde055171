#!/usr/bin/env node
// `enclave-broker --config FILE`: load and validate the config, build the auth hook, start (with
// replicas: as replica ENCLAVE_REPLICA_ID), and drain on SIGTERM/SIGINT. With no --config it runs the embedded default: one TCP listener on
// 127.0.0.1:1883 with anonymous access on that listener only (--host/--port move it).
import { hostname } from 'node:os';
import { Command } from 'commander';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createAuthHook } from './auth/chain.ts';
import { replicaId } from './cluster/config.ts';
import { ConfigError, embeddedDefaultConfig, loadBrokerConfig } from './config.ts';
import type { BrokerConfig } from './config.ts';
import { createBroker } from './server.ts';

async function main(): Promise<void> {
  const program = new Command()
    .name('enclave-broker')
    .description('MQTT 3.1.1 / 5.0 broker of one Enclave tenant')
    .option('-c, --config <file>', 'YAML config file (default: embedded local config)')
    .option('-H, --host <host>', 'host of the embedded default listener', '127.0.0.1')
    .option('-p, --port <port>', 'port of the embedded default listener', '1883')
    .parse();
  const opts = program.opts<{ config?: string; host: string; port: string }>();
  let config: BrokerConfig;
  if (opts.config !== undefined) {
    config = await loadBrokerConfig(opts.config);
  } else {
    const port = Number(opts.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('--port', [`port: must be 0..65535, got "${opts.port}"`]);
    config = embeddedDefaultConfig(opts.host, port);
  }
  const logger = pino({ level: config.logging.level, base: { broker: config.name } });
  const registry = new Registry();
  // With `state.backend: redis` this process is one replica among several: its id is the pod name
  // (ENCLAVE_REPLICA_ID from the downward API), else the host name. The broker builds the cluster
  // state layer, starts it before the listeners (Redis unreachable: degraded, not fatal) and stops
  // it after them, releasing its sessions (broker/replication.ts).
  const replica = config.state.backend === 'redis' ? replicaId(process.env, hostname()) : undefined;
  const broker = createBroker({ config, authHook: await createAuthHook(config, { logger, metrics: { registry } }), logger, registry, replicaId: replica });
  await broker.start();
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    broker.stop().then(() => process.exit(0), (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`enclave-broker: ${(err as Error).message}\n`);
  process.exit(1);
});
