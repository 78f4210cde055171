// The e2e harness: one `enclave()` per scenario file runs the operator in-process against the shared
// control plane and the local runtime (scripts/local-runtime) that turns each rendered broker
// Deployment into a local broker process; plus helpers to apply CRs, wait on the world, and talk
// MQTT with real clients (MQTT.js and Debian's mosquitto_pub/sub). Scenario files stay short.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { startLocalKubelet, type LocalBroker, type LocalKubelet } from '../../../scripts/local-runtime/kubelet.ts';
import { getObject, listObjects } from '../../support/objects.ts';
import { installCrds, startOperatorInProcess, type RunningOperator } from '../../support/operator.ts';
import { repoRoot } from '../../support/paths.ts';
import { eventually } from '../../support/wait.ts';
import { adminKubeConfig, kubectl, world } from '../../support/world.ts';

// Waiting and the repository root come from test/support (one implementation for every test);
// re-exported under the names the scenario files use.
export { eventually, sleep, within } from '../../support/wait.ts';
export const REPO = repoRoot;
export const API = 'mqtt.enclave.dev/v1alpha1';
export const OPERATOR_NS = 'enclave-system';
/** The label a Secret needs before an AuthSource or TlsCertificate may use it (policy SecretReferenceOptIn). */
export const SECRET_OPT_IN = { 'mqtt.enclave.dev/allow-reference': 'true' };

export interface Enclave {
  operator: RunningOperator;
  kubelet: LocalKubelet;
  operatorLog: string;
  stop(): Promise<void>;
}

/** CRDs installed, operator running in-process, local runtime for MqttDeployments in `tenants`. */
export async function startEnclave(name: string, tenants: readonly string[]): Promise<Enclave> {
  await installCrds();
  const dir = join(world().runDir, `e2e-${name}`);
  await mkdir(dir, { recursive: true });
  const operatorLog = join(dir, 'operator.log');
  const operator = await startOperatorInProcess({ operatorNamespace: OPERATOR_NS, logFile: operatorLog, logLevel: 'debug', config: { resyncSeconds: 30 } });
  const kubelet = await startLocalKubelet({ kubeConfig: adminKubeConfig(), root: join(dir, 'brokers'), ownerNamespaces: tenants, intervalMs: 300 });
  return {
    operator, kubelet, operatorLog,
    async stop() {
      await kubelet.stop();
      await operator.stop();
    },
  };
}

export interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid: string; labels?: Record<string, string>; resourceVersion: string; deletionTimestamp?: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  status?: { namespace?: string; configHash?: string; observedGeneration?: number; conditions?: { type: string; status: string; reason: string; message: string }[]; [k: string]: unknown };
}

export async function apply(objects: unknown[]): Promise<void> {
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });
}

export function get(kind: string, name: string, namespace?: string): Promise<Obj | undefined> {
  return getObject<Obj>(kind, name, namespace);
}

export function list(kind: string, namespace?: string, selector?: string): Promise<Obj[]> {
  return listObjects<Obj>(kind, namespace, selector);
}

/** Waits until MqttDeployment ns/name is reconciled and its broker runs locally; returns both. */
export async function brokerOf(e: Enclave, ns: string, name: string, accept?: (b: LocalBroker) => boolean): Promise<{ md: Obj; broker: LocalBroker; port: (listener?: string) => number }> {
  const md = await eventually(`MqttDeployment ${ns}/${name} has a runtime namespace and config hash`, async () => {
    const m = await get('mqttdeployments.mqtt.enclave.dev', name, ns);
    return m?.status?.namespace && m.status.configHash ? m : undefined;
  });
  const runtime = md.status!.namespace!;
  // The status hash is re-read on every poll: an early reconcile (a reference not yet in the
  // operator's cache) may have published a hash that a later one replaced.
  let latest = md;
  const broker = await eventually(`local broker of ${ns}/${name} runs the current config`, async () => {
    latest = (await get('mqttdeployments.mqtt.enclave.dev', name, ns)) ?? latest;
    const b = e.kubelet.brokers().find((x) => x.namespace === runtime);
    return b && b.starts > 0 && b.configHash === latest.status?.configHash && (accept?.(b) ?? true) ? b : undefined;
  }, 90_000).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; MqttDeployment conditions: ${JSON.stringify(latest.status?.conditions ?? [])}`, { cause: err });
  });
  const port = (listener?: string) => {
    const ep = listener ? broker.endpoints.find((x) => x.name === listener) : broker.endpoints[0];
    if (!ep) throw new Error(`broker ${runtime} has no listener ${listener ?? '(any)'}`);
    return ep.port;
  };
  return { md: latest, broker, port };
}

/** Every replica of a runtime namespace's broker running the MqttDeployment's current config, by replica index. */
export async function replicasOf(e: Enclave, md: Obj, count: number): Promise<LocalBroker[]> {
  const runtime = md.status!.namespace!;
  return eventually(`${count} local replicas in ${runtime} run the current config`, async () => {
    const hash = (await get('mqttdeployments.mqtt.enclave.dev', md.metadata.name, md.metadata.namespace))?.status?.configHash;
    const all = e.kubelet.brokers().filter((b) => b.namespace === runtime && b.starts > 0 && b.configHash === hash).sort((a, b) => a.replica - b.replica);
    return all.length === count ? all : undefined;
  }, 90_000);
}

/** Deletes an object and waits until it is gone (the operator's purge finalizer runs in between). */
export async function deleteAndWait(kind: string, name: string, namespace?: string, timeoutMs = 90_000): Promise<void> {
  await kubectl(['delete', kind, name, ...(namespace ? ['-n', namespace] : []), '--wait=false', '--ignore-not-found']);
  await eventually(`${kind} ${namespace ?? ''}/${name} deleted`, async () => (await get(kind, name, namespace)) === undefined, timeoutMs);
}

// ---- MQTT clients ------------------------------------------------------------------------------

/**
 * MQTT.js connect; resolves with the client, or rejects with the broker's refusal. A connection
 * closed before CONNACK without an error (e.g. a TLS server dropping an unverified client
 * certificate, which sends no alert) rejects with "Couldn't connect to server" instead of leaving
 * the promise pending forever, which is what connectAsync does by default.
 */
export async function connect(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...opts }, false);
}

/** The CONNACK error of a refused MQTT.js connection ('' when it connected). */
export async function refusal(url: string, opts: IClientOptions = {}): Promise<string> {
  try {
    const c = await connect(url, opts);
    await c.endAsync();
    return '';
  } catch (err) {
    return (err as Error).message || 'refused';
  }
}

export interface ToolResult { code: number; stdout: string; stderr: string }

/** Runs a Debian mosquitto client (mosquitto_pub / mosquitto_sub) with a hard timeout. */
export function mosquitto(bin: 'mosquitto_pub' | 'mosquitto_sub', args: string[], timeoutMs = 10_000): Promise<ToolResult> {
  return new Promise((res) => {
    execFile(bin, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** Subscribes, waits for SUBACK, and collects messages as `topic payload` lines. */
export async function subscriber(client: MqttClient, topic: string, qos: 0 | 1 | 2 = 1): Promise<string[]> {
  const got: string[] = [];
  client.on('message', (t, p) => got.push(`${t} ${p.toString()}`));
  const granted = await client.subscribeAsync(topic, { qos });
  if (granted.some((g) => g.qos === 128)) throw new Error(`subscription to ${topic} refused`);
  return got;
}

/** MQTT.js's names of the SUBACK failure codes (its ESM build puts only the name on the error). */
const subackFailures: Record<string, number> = {
  'Unspecified error': 0x80, 'Implementation specific error': 0x83, 'Not authorized': 0x87, 'Topic Filter invalid': 0x8f,
  'Packet identifier in use': 0x91, 'Quota exceeded': 0x97, 'Shared Subscriptions not supported': 0x9e,
  'Subscription Identifiers not supported': 0xa1, 'Wildcard Subscriptions not supported': 0xa2,
};

/**
 * The SUBACK return code for one topic: the granted QoS, or the failure code (0x80 on 3.1.1; on 5
 * the reason code, e.g. 0x87 not authorized, 0x97 quota exceeded) from MQTT.js's rejection.
 */
export async function suback(client: MqttClient, topic: string, qos: 0 | 1 | 2 = 1): Promise<number> {
  try {
    const granted = await client.subscribeAsync(topic, { qos });
    return granted[0]?.qos ?? -1;
  } catch (err) {
    const name = /^Subscribe error: (.*)$/.exec((err as Error).message)?.[1];
    if (name === undefined) throw err;
    // A 3.1.1 SUBACK has the one code 0x80, which MQTT.js names like v5's 0x05 ("Not authorized").
    if (client.options.protocolVersion !== 5) return 0x80;
    const code = subackFailures[name];
    if (code === undefined) throw new Error(`unknown SUBACK failure "${name}" for ${topic}`, { cause: err });
    return code;
  }
}
