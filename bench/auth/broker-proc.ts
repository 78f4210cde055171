// One broker process for the auth benchmark: reads a BrokerConfig (JSON file in argv[2]), builds
// the auth chain exactly as broker/main.ts does (allow-all when nothing is configured), listens on
// an ephemeral port and prints `READY <port>`. Runs until killed.
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createAuthChain } from '../../broker/auth/chain.ts';
import { allowAllHook, type AuthHook } from '../../broker/auth/hook.ts';
import type { BrokerConfig } from '../../broker/config.ts';
import { createBroker } from '../../broker/server.ts';

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as BrokerConfig;
const logger = pino({ level: 'warn' });
const registry = new Registry();
const none = config.authentication.chain.length === 0 && config.authorization.chain.length === 0 && config.authentication.allowAnonymous && config.authorization.noMatch === 'allow';
const hook: AuthHook = none ? allowAllHook : await createAuthChain(config, { logger, metrics: { registry } });
const broker = createBroker({ config, authHook: hook, logger, registry, sysIntervalMs: 0 });
await broker.start();
process.stdout.write(`READY ${broker.addresses()[0]!.port}\n`);
process.on('SIGTERM', () => {
  void broker.stop(0).finally(() => process.exit(0));
});
