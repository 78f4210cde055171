// The user journey on the real node: `helm install` of the chart with the locally built images (the
// operator runs as a pod, holds its Lease, answers /metrics through its Service), tenants' brokers as
// real pods Ready through their real probes, clients in pods reaching them through the Service's
// ClusterIP and DNS name, NetworkPolicies enforced by kube-router (another tenant's pod cannot
// connect; the broker reaches an in-cluster auth backend only once its AuthSource declares it),
// a password rotated through the kubelet's own Secret volume update with no restart, failures
// reported with the kubelet's reason, a graceful delete (DISCONNECT 0x8B, namespace gone) and
// `helm uninstall` refused while MqttDeployments exist. Two replicas share their state through the
// managed Redis: a subscriber on one pod gets what is published on the other, survives its pod's
// deletion by resuming through the Service, and a rollout under QoS 1 traffic loses nothing.
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bcrypt from 'bcryptjs';
import { Redis } from 'ioredis';
import mqtt, { type MqttClient } from 'mqtt';
import { POD_GATEWAY } from '../support/node-network.ts';
import { createCa, createLeaf } from '../support/pki.ts';
import { helm, kubectl, world } from '../support/world.ts';
import { API, apply, connect, deleteAndWait, eventually, get, refusal, type Obj } from './support/harness.ts';
import { HTTP_AUTH_SERVER, execIn, execInBroker, restricted, startClientPod } from './support/pods.ts';

const RELEASE_NS = 'enclave-node-e2e';
const A = 'e2e-node-a';
const B = 'e2e-node-b';
const AUTH = 'e2e-node-auth';
const MD = 'mqttdeployments.mqtt.enclave.dev';
/** `repository:tag` of an image the node holds, split for the chart's values. */
const repoTag = (image: string): [string, string] => [image.slice(0, image.lastIndexOf(':')), image.slice(image.lastIndexOf(':') + 1)];

const users = (password: string) => ({
  users: [{ username: 'alice', password_hash: bcrypt.hashSync(password, 4) }],
  acl: [{ username: 'alice', permission: 'allow', action: 'all', topic: 'devices/#' }],
});

function tenant(ns: string, opts: { password: string; image?: string; chain?: string[]; replicas?: number; maxConnections?: number; tls?: boolean }): object[] {
  const chain = opts.chain ?? ['users'];
  // An http source without an aclUrl cannot answer authorization (its reply's ACL is the client's).
  const authz = chain.filter((name) => name !== 'http');
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'app.kubernetes.io/part-of': 'enclave-e2e' } } },
    {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: ns, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } },
      stringData: { 'users.yaml': JSON.stringify(users(opts.password)) },
    },
    { apiVersion: API, kind: 'AuthSource', metadata: { name: 'users', namespace: ns }, spec: { type: 'builtin', builtin: { secretRef: { name: 'users', key: 'users.yaml' } }, passwordHash: { algorithm: 'bcrypt' } } },
    {
      apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'broker', namespace: ns },
      spec: {
        replicas: opts.replicas ?? 1,
        // More than one replica shares its state through a Redis the operator runs (the CRD insists).
        ...((opts.replicas ?? 1) > 1 ? { state: { backend: 'redis', redis: { managed: {} } } } : {}),
        ...(opts.image ? { image: opts.image } : {}),
        ...(opts.maxConnections ? { limits: { maxConnections: opts.maxConnections } } : {}),
        listeners: [
          { name: 'mqtt', protocol: 'mqtt', port: 1883 },
          ...(opts.tls ? [{ name: 'mqtts', protocol: 'mqtts', port: 8883, tlsCertificateRef: { name: 'server' } }] : []),
        ],
        authentication: { chain: chain.map((name) => ({ name })) },
        authorization: { chain: authz.map((name) => ({ name })), noMatch: 'deny' },
        network: { allowFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } }] },
      },
    },
  ];
}

/** A kubernetes.io/tls Secret as cert-manager would write it, for TlsCertificate `server` (secretRef). */
async function serverTlsSecret(ns: string, generation: number): Promise<object> {
  const dir = join(world().runDir, `node-tls-${generation}`);
  await mkdir(dir, { recursive: true });
  const ca = await createCa(dir, 'ca', `node-e2e-ca-${generation}`);
  const leaf = await createLeaf(dir, 'server', ca, { commonName: 'broker', altNames: ['DNS:broker'], usage: 'serverAuth' });
  const b64 = async (f: string) => (await readFile(f)).toString('base64');
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'server-tls', namespace: ns, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } },
    data: { 'tls.crt': await b64(leaf.cert), 'tls.key': await b64(leaf.key) },
  };
}

function servedFingerprint(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()?.fingerprint256 ?? '');
      s.destroy();
    });
    s.setTimeout(3_000, () => s.destroy(new Error('TLS handshake timeout')));
    s.once('error', reject);
  });
}

const condition = (m: Obj | undefined, type: string) => m?.status?.conditions?.find((c) => c.type === type);

async function readyDeployment(ns: string, name = 'broker', timeoutMs = 120_000): Promise<Obj> {
  let last: Obj | undefined;
  return eventually(`MqttDeployment ${ns}/${name} Ready`, async () => {
    last = await get(MD, name, ns);
    // Ready for this generation, not a Ready left over from the spec before.
    const ready = condition(last, 'Ready') as { status: string; observedGeneration?: number } | undefined;
    if (ready?.status !== 'True' || ready.observedGeneration !== (last?.metadata as { generation?: number } | undefined)?.generation) return undefined;
    // Ready counts the pods of the new template; a replaced one may still drain (it answers no
    // CONNECT) and kube-proxy may still send a new connection to it: tests start once it is gone.
    const runtimeNs = (last?.status as { namespace?: string } | undefined)?.namespace;
    const replicas = (last?.spec as { replicas?: number } | undefined)?.replicas ?? 1;
    return runtimeNs === undefined || (await podIPs(runtimeNs)).length <= replicas ? last : undefined;
  }, timeoutMs).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; conditions: ${JSON.stringify(last?.status?.conditions ?? [])}`, { cause: err });
  });
}

/** Waits until MqttDeployment ns/broker is Ready=False with `reason`; the conditions seen last on timeout. */
async function notReadyBecause(ns: string, reason: string, timeoutMs: number): Promise<Obj> {
  let cur: Obj | undefined;
  return eventually(`Ready=False reason ${reason}`, async () => {
    cur = await get(MD, 'broker', ns);
    const ready = condition(cur, 'Ready');
    return ready?.status === 'False' && ready.reason === reason ? cur : undefined;
  }, timeoutMs).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; conditions: ${JSON.stringify(cur?.status?.conditions ?? [])}`, { cause: err });
  });
}

async function clusterIP(ns: string, service = 'broker'): Promise<string> {
  return (await kubectl(['get', 'service', service, '-n', ns, '-o', 'jsonpath={.spec.clusterIP}'])).stdout;
}

/** Name and IP of each broker pod (one still draining included), sorted by name. */
async function podIPs(runtimeNs: string): Promise<{ name: string; ip: string }[]> {
  const r = await kubectl(['get', 'pods', '-n', runtimeNs, '-l', 'app.kubernetes.io/name=enclave-broker', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{"\\n"}{end}']);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => ({ name: l.split(' ')[0]!, ip: l.split(' ')[1]! })).sort((a, b) => a.name.localeCompare(b.name));
}

async function brokerPods(runtimeNs: string): Promise<{ name: string; restarts: number; uid: string }[]> {
  const r = await kubectl(['get', 'pods', '-n', runtimeNs, '-l', 'app.kubernetes.io/name=enclave-broker', '-o', 'json']);
  const pods = (JSON.parse(r.stdout) as { items: { metadata: { name: string; uid: string; deletionTimestamp?: string }; status?: { containerStatuses?: { restartCount: number }[] } }[] }).items;
  return pods.filter((p) => !p.metadata.deletionTimestamp).map((p) => ({ name: p.metadata.name, uid: p.metadata.uid, restarts: p.status?.containerStatuses?.[0]?.restartCount ?? 0 }));
}

/** Bytes of the regular files under `dir` (recursive). */
async function du(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  return total;
}

let runtimeA = '';
let runtimeB = '';

beforeAll(async () => {
  const w = world();
  // The tags the world built (not recomputed here: the tree may have changed since).
  const [operatorRepo, operatorTag] = repoTag(w.node.images.operator);
  const [brokerRepo, brokerTag] = repoTag(w.node.images.broker);
  // The chart as a user installs it, pointed at the images the node holds and at where the API
  // server really is for pods (the `kubernetes` Service leads to the node bridge's gateway).
  await helm(['upgrade', '--install', 'enclave', 'charts/enclave', '-n', RELEASE_NS, '--create-namespace', '--wait', '--timeout', '180s',
    '--set', `operator.image.repository=${operatorRepo}`, '--set', `operator.image.tag=${operatorTag}`,
    '--set', `broker.image.repository=${brokerRepo}`, '--set', `broker.image.tag=${brokerTag}`,
    '--set', `networkPolicy.apiServer.cidrs={${POD_GATEWAY}/32}`, '--set', `networkPolicy.apiServer.ports={${w.kube.apiPort}}`,
    // A shared auth service in its own namespace, as a platform team would allow one.
    '--set', `policy.allowedEgressNamespaces={${AUTH}}`,
    // The crash-loop test runs the operator image as a broker: the platform allows that repository.
    '--set', `policy.allowedImageRepositories={${operatorRepo}}`,
    // The managed state backend's Redis: the one the node holds, as the platform's choice.
    '--set', `policy.stateBackend.redisImage=${w.node.images.redis}`,
    '--set', 'operator.resyncSeconds=30'], { timeoutMs: 230_000 });
}, 240_000);

afterAll(async () => {
  for (const ns of [A, B]) await kubectl(['delete', MD, '--all', '-n', ns, '--wait=true', '--timeout=120s'], { allowFailure: true });
  await helm(['uninstall', 'enclave', '-n', RELEASE_NS, '--wait', '--timeout', '120s'], { allowFailure: true, timeoutMs: 130_000 });
  for (const ns of [A, B, AUTH, RELEASE_NS]) await kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
}, 300_000);

describe('the chart on the node', () => {
  it('runs the operator as a pod that holds the Lease and serves /metrics through its Service', async () => {
    const pod = await eventually('operator pod Ready', async () => {
      const r = await kubectl(['get', 'pods', '-n', RELEASE_NS, '-l', 'app.kubernetes.io/name=enclave', '-o', 'json']);
      const items = (JSON.parse(r.stdout) as { items: { metadata: { name: string }; status?: { phase?: string; conditions?: { type: string; status: string }[] } }[] }).items;
      return items.find((p) => p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    }, 120_000);
    const lease = await eventually('the Lease names the operator pod', async () => {
      const r = await kubectl(['get', 'lease', 'enclave-operator-leader', '-n', RELEASE_NS, '-o', 'jsonpath={.spec.holderIdentity}'], { allowFailure: true });
      return r.stdout === pod.metadata.name ? r.stdout : undefined;
    });
    expect(lease).toBe(pod.metadata.name);
    const svc = (await kubectl(['get', 'service', '-n', RELEASE_NS, '-l', 'app.kubernetes.io/name=enclave', '-o', 'jsonpath={.items[0].spec.clusterIP}'])).stdout;
    const metrics = await eventually('metrics through the Service', async () => {
      const res = await fetch(`http://${svc}:8080/metrics`, { signal: AbortSignal.timeout(3_000) });
      return res.ok ? res.text() : undefined;
    });
    expect(metrics).toMatch(/^enclave_/m);
  }, 180_000);
});

describe('tenants on the node', () => {
  it('runs each broker as a restricted pod, Ready through its real probes', async () => {
    await apply([...tenant(A, { password: 'alice-a' }), ...tenant(B, { password: 'alice-b' })]);
    const [a, b] = await Promise.all([readyDeployment(A), readyDeployment(B), startClientPod(A), startClientPod(B)]);
    runtimeA = a.status!.namespace!;
    runtimeB = b.status!.namespace!;
    const labels = (await kubectl(['get', 'namespace', runtimeA, '-o', 'jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}'])).stdout;
    expect(labels).toBe('restricted');
    const pods = await brokerPods(runtimeA);
    expect(pods).toHaveLength(1);
    expect(a.status?.readyReplicas).toBe(1);
  }, 180_000);

  it('serves a client pod of its own namespace through the ClusterIP and the Service DNS name', async () => {
    const ip = await clusterIP(runtimeA);
    const env = { PORT: '1883', USERNAME: 'alice', PASSWORD: 'alice-a', TOPIC: 'devices/d1/temp', PAYLOAD: 'via-ip', CLIENT_ID: 'pod-a-1' };
    // The enforcer learns a new pod's address a moment after the pod is Ready: the first probe may wait.
    expect(await eventually('the client pod reaches its broker', async () => {
      const r = await execIn(A, 'client', 'mqtt', { ...env, HOST: ip });
      return r.startsWith('GOT') ? r : undefined;
    }, 30_000)).toBe('GOT via-ip');
    const dnsName = `broker.${runtimeA}.svc.cluster.local`;
    expect(await execIn(A, 'client', 'dns', { NAME: dnsName })).toBe(ip);
    expect(await execIn(A, 'client', 'mqtt', { ...env, HOST: dnsName, PAYLOAD: 'via-dns', CLIENT_ID: 'pod-a-2' })).toBe('GOT via-dns');
    // Tenant B's credentials are not tenant A's.
    expect(await execIn(A, 'client', 'mqtt', { ...env, HOST: ip, PASSWORD: 'alice-b', CLIENT_ID: 'pod-a-3' })).toBe('CONNACK 4');
  }, 180_000);

  it("refuses a TCP connection from another tenant's pod (NetworkPolicy enforced)", async () => {
    const [ipA, ipB] = [await clusterIP(runtimeA), await clusterIP(runtimeB)];
    // The same pod reaches its own tenant's broker: it is known to the enforcer, the probe works.
    expect(await eventually('tenant B reaches its own broker', async () => {
      const r = await execIn(B, 'client', 'tcp', { HOST: ipB, PORT: '1883' });
      return r === 'CONNECTED' ? r : undefined;
    }, 30_000)).toBe('CONNECTED');
    const fromB = await execIn(B, 'client', 'tcp', { HOST: ipA, PORT: '1883' });
    console.log(`[node] tenant B pod → tenant A broker ${ipA}:1883: ${fromB}`);
    expect(['TIMEOUT', 'REFUSED']).toContain(fromB);
    expect(await execIn(A, 'client', 'tcp', { HOST: ipA, PORT: '1883' })).toBe('CONNECTED');
  }, 120_000);
});

describe('egress from the broker', () => {
  it('reaches an in-cluster auth backend through its Service name only once the AuthSource declares it', async () => {
    await apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: AUTH, labels: { 'app.kubernetes.io/part-of': 'enclave-e2e' } } },
      {
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'auth', namespace: AUTH },
        spec: {
          replicas: 1, selector: { matchLabels: { app: 'auth' } },
          template: {
            metadata: { labels: { app: 'auth' } },
            spec: {
              terminationGracePeriodSeconds: 1, automountServiceAccountToken: false,
              containers: [{
                name: 'auth', image: world().node.images.broker, imagePullPolicy: 'Never', command: ['node', '-e', HTTP_AUTH_SERVER],
                env: [{ name: 'AUTH_USER', value: 'pod-user' }, { name: 'AUTH_PASSWORD', value: 'pod-pw' }],
                ports: [{ containerPort: 8080 }], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
                securityContext: restricted,
              }],
            },
          },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'auth', namespace: AUTH }, spec: { selector: { app: 'auth' }, ports: [{ port: 8080, targetPort: 8080 }] } },
    ]);
    await kubectl(['rollout', 'status', 'deployment/auth', '-n', AUTH, '--timeout=90s']);
    const authUrl = `http://auth.${AUTH}.svc.cluster.local:8080/auth`;
    const httpSource = (egress: object[]) => ({
      apiVersion: API, kind: 'AuthSource', metadata: { name: 'http', namespace: B },
      spec: { type: 'http', http: { url: authUrl, method: 'POST', bodyFormat: 'json' }, timeout: '2s', onBackendFailure: 'deny', egress },
    });
    // Not declared: the broker may not reach it.
    await apply([httpSource([]), ...tenant(B, { password: 'alice-b', chain: ['http', 'users'] })]);
    await readyDeployment(B);
    const authIp = await clusterIP(AUTH, 'auth');
    expect(await execInBroker(runtimeB, 'dns', { NAME: `auth.${AUTH}.svc.cluster.local` })).toBe(authIp);
    const blocked = await eventually('the undeclared backend is unreachable from the broker', async () => {
      const r = await execInBroker(runtimeB, 'tcp', { HOST: `auth.${AUTH}.svc.cluster.local`, PORT: '8080', TIMEOUT_MS: '2000' });
      return r !== 'CONNECTED' ? r : undefined;
    });
    console.log(`[node] broker → undeclared auth backend: ${blocked}`);
    const ipB = await clusterIP(runtimeB);
    // The broker pod is new (the chain changed its config). Ready means the new pod serves, but the
    // replaced one drains for a while and kube-proxy may still route a connection to it (it knows
    // only the users source: CONNACK 5, not the backend failure measured here). Wait until it is
    // gone, then out the enforcer's lag for the new address, so what follows measures the auth
    // backend and not the path to the broker.
    await eventually('the replaced broker pod is gone', async () => (await podIPs(runtimeB)).length === 1, 60_000);
    await eventually('the client pod reaches the new broker pod', async () =>
      (await execIn(B, 'client', 'tcp', { HOST: ipB, PORT: '1883' })) === 'CONNECTED', 30_000);
    // Fail closed: the backend is unreachable, so the user it would allow is refused — with 3.1.1's
    // code 3 (server unavailable): a backend failure, not bad credentials.
    const denied = await execIn(B, 'client', 'mqtt', { HOST: ipB, PORT: '1883', USERNAME: 'pod-user', PASSWORD: 'pod-pw', TOPIC: 'devices/x', PAYLOAD: 'x', CLIENT_ID: 'pod-b-1' });
    expect(denied).toBe('CONNACK 3');
    // Declared: the same Service name works.
    await apply([httpSource([{ namespace: AUTH, podLabels: { app: 'auth' }, port: 8080 }])]);
    await eventually('the declared backend is reachable from the broker', async () =>
      (await execInBroker(runtimeB, 'tcp', { HOST: `auth.${AUTH}.svc.cluster.local`, PORT: '8080' })) === 'CONNECTED');
    let last = '';
    const allowed = await eventually('a client authenticated by the in-cluster backend', async () => {
      last = await execIn(B, 'client', 'mqtt', { HOST: ipB, PORT: '1883', USERNAME: 'pod-user', PASSWORD: 'pod-pw', TOPIC: 'devices/x', PAYLOAD: 'through-http-auth', CLIENT_ID: 'pod-b-2' });
      return last.startsWith('GOT') ? last : undefined;
    }, 60_000).catch(async (err: unknown) => {
      const log = await kubectl(['logs', '-n', runtimeB, '-l', 'app.kubernetes.io/name=enclave-broker', '--tail=15'], { allowFailure: true });
      throw new Error(`${(err as Error).message}; last client result: ${last}; broker log:\n${log.stdout}`, { cause: err });
    });
    expect(allowed).toBe('GOT through-http-auth');
  }, 300_000);
});

describe('an external state backend', () => {
  it('two replicas on a Redis of another namespace, reached through its declared egress; deleting the deployment purges every key under its prefix (a Job in the runtime namespace)', async () => {
    const C = 'e2e-node-c';
    const password = 'state-redis-pw';
    // A Redis the platform runs in the shared-services namespace (AUTH, an allowed egress namespace).
    await apply([
      {
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'state-redis', namespace: AUTH },
        spec: {
          replicas: 1, selector: { matchLabels: { app: 'state-redis' } },
          template: {
            metadata: { labels: { app: 'state-redis' } },
            spec: {
              terminationGracePeriodSeconds: 1, automountServiceAccountToken: false,
              containers: [{
                name: 'redis', image: world().node.images.redis, imagePullPolicy: 'Never',
                args: ['--port', '6379', '--requirepass', password, '--save', '', '--appendonly', 'no', '--dir', '/tmp'],
                ports: [{ containerPort: 6379 }], readinessProbe: { tcpSocket: { port: 6379 }, periodSeconds: 1 },
                securityContext: restricted, volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
              }],
              volumes: [{ name: 'tmp', emptyDir: {} }],
            },
          },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'state-redis', namespace: AUTH }, spec: { selector: { app: 'state-redis' }, ports: [{ port: 6379, targetPort: 6379 }] } },
    ]);
    await kubectl(['rollout', 'status', 'deployment/state-redis', '-n', AUTH, '--timeout=90s']);
    const objects = tenant(C, { password: 'alice-c' }) as { kind: string; spec?: Record<string, unknown> }[];
    const md = objects.find((o) => o.kind === 'MqttDeployment')!;
    md.spec = {
      ...md.spec, replicas: 2,
      state: { backend: 'redis', redis: { external: { secretRef: { name: 'state-redis' }, egress: { namespace: AUTH, podLabels: { app: 'state-redis' }, port: 6379 } } } },
    };
    await apply([
      ...objects,
      {
        apiVersion: 'v1', kind: 'Secret', metadata: { name: 'state-redis', namespace: C, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } },
        stringData: { address: `state-redis.${AUTH}.svc.cluster.local:6379`, password },
      },
    ]);
    const ready = await readyDeployment(C, 'broker', 180_000);
    expect(ready.status?.readyReplicas).toBe(2);
    const runtimeC = ready.status!.namespace!;
    const prefix = `enclave:${ready.metadata.uid}:`;
    // The test process reaches the Redis pod directly (the node is not subject to NetworkPolicy).
    const redisIp = (await kubectl(['get', 'pods', '-n', AUTH, '-l', 'app=state-redis', '-o', 'jsonpath={.items[0].status.podIP}'])).stdout;
    const redis = new Redis({ host: redisIp, port: 6379, password, lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    const keys = async () => (await redis.keys(`${prefix}*`)).length;
    try {
      const ip = await clusterIP(runtimeC);
      const c = await eventually('a client connected through the Service', () =>
        connect(`mqtt://${ip}:1883`, { username: 'alice', password: 'alice-c', clientId: 'ext-state', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } }).catch(() => undefined), 60_000);
      await c.subscribeAsync('devices/ext/#', { qos: 1 });
      await c.publishAsync('devices/ext/kept', 'retained', { qos: 1, retain: true });
      await c.endAsync();
      await eventually('the replicas keep their state under the deployment prefix', async () => (await keys()) > 0, 30_000);
      await deleteAndWait(MD, 'broker', C, 180_000);
      expect((await kubectl(['get', 'namespace', runtimeC], { allowFailure: true })).code).not.toBe(0);
      expect(await keys()).toBe(0);
    } finally {
      redis.disconnect();
      await kubectl(['delete', 'namespace', C, '--wait=false', '--ignore-not-found']);
    }
  }, 360_000);
});

describe('a managed state backend with a volume', () => {
  it('keeps retained messages and queued QoS 1 messages on its claim across a restart of every pod; deleting the deployment deletes the volume and its data', async () => {
    const D = 'e2e-node-d';
    // A volume as a storage admin provides one without a provisioner: a static PersistentVolume of a
    // class the tenant names, on a node directory owned by the Redis user (hostPath volumes get no
    // fsGroup ownership). Reclaim policy Delete: the volume controller removes the data with it.
    const dir = await mkdtemp('/tmp/enclave-e2e-pv-');
    await chown(dir, 65532, 65532);
    await chmod(dir, 0o700);
    const pv = `enclave-e2e-${basename(dir).slice('enclave-e2e-pv-'.length).toLowerCase()}`;
    const storageClassName = 'enclave-e2e-static';
    await apply([{
      apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: pv, labels: { 'app.kubernetes.io/part-of': 'enclave-e2e' } },
      spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Delete', storageClassName, hostPath: { path: dir, type: 'Directory' } },
    }]);
    const objects = tenant(D, { password: 'alice-d' }) as { kind: string; spec?: Record<string, unknown> }[];
    const md = objects.find((o) => o.kind === 'MqttDeployment')!;
    md.spec = { ...md.spec, replicas: 2, state: { backend: 'redis', redis: { managed: { persistence: { size: '64Mi', storageClassName } } } } };
    try {
      await apply(objects);
      const ready = await readyDeployment(D, 'broker', 180_000);
      const runtimeD = ready.status!.namespace!;
      expect((await kubectl(['get', 'pvc', 'redis-data', '-n', runtimeD, '-o', 'jsonpath={.status.phase} {.spec.volumeName}'])).stdout).toBe(`Bound ${pv}`);
      const ip = await clusterIP(runtimeD);
      const opts = { username: 'alice', password: 'alice-d', protocolVersion: 5 as const };
      // A persistent session goes offline subscribed; what is published for it then is queued in Redis.
      const sub = await eventually('a client connected through the Service', () =>
        connect(`mqtt://${ip}:1883`, { ...opts, clientId: 'pv-sub', clean: false, properties: { sessionExpiryInterval: 600 } }).catch(() => undefined), 60_000);
      await sub.subscribeAsync('devices/pv/q', { qos: 1 });
      await sub.endAsync();
      const pub = await connect(`mqtt://${ip}:1883`, { ...opts, clientId: 'pv-pub' });
      await pub.publishAsync('devices/pv/kept', 'on the volume', { qos: 1, retain: true });
      for (let i = 0; i < 20; i++) await pub.publishAsync('devices/pv/q', String(i), { qos: 1 });
      await pub.endAsync();
      // Redis' append-only file is on the node's directory, i.e. on the volume.
      await eventually('the append-only file is written to the volume', async () => (await du(dir)) > 0, 30_000);
      // Every pod at once: no broker keeps anything in memory and Redis starts from its file alone.
      const before = (await kubectl(['get', 'pods', '-n', runtimeD, '-o', 'jsonpath={.items[*].metadata.uid}'])).stdout.split(' ');
      await kubectl(['delete', 'pods', '--all', '-n', runtimeD, '--wait=false']);
      await eventually('every pod was replaced and is ready again', async () => {
        const r = await kubectl(['get', 'pods', '-n', runtimeD, '-o', 'json']);
        const pods = (JSON.parse(r.stdout) as { items: { metadata: { uid: string }; status?: { conditions?: { type: string; status: string }[] } }[] }).items;
        return pods.length === 3 && pods.every((p) => !before.includes(p.metadata.uid) && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      }, 180_000);
      // Listening before the CONNACK: the queued messages follow it at once.
      const got: string[] = [];
      const again = mqtt.connect(`mqtt://${ip}:1883`, { ...opts, clientId: 'pv-sub', clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 500, connectTimeout: 5_000 });
      again.on('message', (topic, p) => got.push(`${topic} ${p.toString()}`));
      let sessionPresent: boolean | undefined;
      again.on('connect', (ack) => (sessionPresent ??= ack.sessionPresent));
      await eventually('the session resumes through the Service', async () => again.connected, 60_000);
      expect(sessionPresent).toBe(true);
      await again.subscribeAsync('devices/pv/kept', { qos: 1 });
      await eventually('the queued messages and the retained one arrive', async () => got.length >= 21, 30_000).catch(() => undefined);
      expect(got.filter((m) => m.startsWith('devices/pv/q ')).map((m) => Number(m.split(' ')[1]))).toEqual([...Array(20).keys()]);
      expect(got).toContain('devices/pv/kept on the volume');
      await again.endAsync();
      // Delete: the claim goes with the runtime namespace, the released volume and its data with it.
      await deleteAndWait(MD, 'broker', D, 180_000);
      await eventually('the volume is deleted', async () => (await kubectl(['get', 'pv', pv], { allowFailure: true })).code !== 0, 60_000);
      expect(existsSync(dir)).toBe(false);
    } finally {
      await kubectl(['delete', 'namespace', D, '--wait=false', '--ignore-not-found']);
      await kubectl(['delete', 'pv', pv, '--wait=false', '--ignore-not-found']);
      await rm(dir, { recursive: true, force: true });
    }
  }, 420_000);
});

describe('rotation, failures, delete', () => {
  it('a rotated password reaches the running pod through the kubelet volume update: no restart, no client dropped', async () => {
    const ip = await clusterIP(runtimeA);
    const before = await brokerPods(runtimeA);
    const kept: MqttClient = await connect(`mqtt://${ip}:1883`, { username: 'alice', password: 'alice-a', clientId: 'kept-through-rotation' });
    let closed = false;
    kept.on('close', () => (closed = true));
    await apply([{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: A, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } }, stringData: { 'users.yaml': JSON.stringify(users('alice-a-2')) } }]);
    await eventually('the new password is accepted', async () => (await refusal(`mqtt://${ip}:1883`, { username: 'alice', password: 'alice-a-2' })) === '', 90_000);
    expect(await refusal(`mqtt://${ip}:1883`, { username: 'alice', password: 'alice-a' })).not.toBe('');
    expect(closed).toBe(false);
    await kept.publishAsync('devices/kept/t', 'still here', { qos: 1 });
    expect(await brokerPods(runtimeA)).toEqual(before);
    await kept.endAsync();
  }, 150_000);

  it('a renewed server certificate reaches the running pod through the kubelet volume update: served at once, no restart, TLS client kept', async () => {
    await apply([
      await serverTlsSecret(A, 1),
      { apiVersion: API, kind: 'TlsCertificate', metadata: { name: 'server', namespace: A }, spec: { secretRef: { name: 'server-tls' } } },
      ...tenant(A, { password: 'alice-a-2', tls: true }),
    ]);
    await readyDeployment(A);
    const ip = await clusterIP(runtimeA);
    const first = await eventually('mqtts serves the first certificate', async () => servedFingerprint(ip, 8883).catch(() => undefined), 60_000);
    const before = await brokerPods(runtimeA);
    const kept = await connect(`mqtts://${ip}:8883`, { username: 'alice', password: 'alice-a-2', clientId: 'tls-kept', rejectUnauthorized: false });
    let closed = false;
    kept.on('close', () => (closed = true));
    await apply([await serverTlsSecret(A, 2)]);
    const second = await eventually('mqtts serves the renewed certificate', async () => {
      const f = await servedFingerprint(ip, 8883).catch(() => undefined);
      return f && f !== first ? f : undefined;
    }, 90_000);
    expect(second).not.toBe(first);
    expect(await brokerPods(runtimeA)).toEqual(before);
    expect(closed).toBe(false);
    await kept.publishAsync('devices/tls/t', 'still here', { qos: 1 });
    await kept.endAsync();
  }, 240_000);

  it('reports an image that cannot be pulled with the kubelet reason', async () => {
    await apply(tenant(B, { password: 'alice-b', chain: ['http', 'users'], image: `${repoTag(world().node.images.broker)[0]}:does-not-exist` }));
    const m = await notReadyBecause(B, 'ImagePullBackOff', 120_000);
    expect(condition(m, 'Ready')?.message).toMatch(/Pod broker-.*container broker cannot pull image .*:does-not-exist \(ImagePullBackOff\)/);
    expect(condition(m, 'Degraded')?.status).toBe('True');
  }, 150_000);

  it('refuses helm uninstall while MqttDeployments exist (the guard Job runs on the node and names them)', async () => {
    const r = await helm(['uninstall', 'enclave', '-n', RELEASE_NS, '--timeout', '120s'], { allowFailure: true, timeoutMs: 130_000 });
    expect(r.code).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/pre-delete hook|uninstall-guard/);
    const logs = await kubectl(['logs', 'job/enclave-uninstall-guard', '-n', RELEASE_NS], { allowFailure: true });
    expect(logs.stdout + logs.stderr).toContain(`${A}/broker`);
    expect((await kubectl(['get', 'deployment', '-n', RELEASE_NS, '-o', 'name'])).stdout).toMatch(/deployment/);
  }, 180_000);

  it('two replicas share a managed Redis: a subscriber on one pod gets what the other pod receives; its pod deleted, it resumes through the Service with nothing lost', async () => {
    await apply(tenant(A, { password: 'alice-a-2', replicas: 2 }));
    expect((await readyDeployment(A, 'broker', 180_000)).status?.readyReplicas).toBe(2);
    const redis = (await kubectl(['get', 'deployment', 'redis', '-n', runtimeA, '-o', 'jsonpath={.status.readyReplicas}'])).stdout;
    expect(redis).toBe('1');
    // Ready counts the pods of the new template; the replaced one may still be draining (it answers
    // no CONNECT any more): the two pods to use are the only two left.
    const [p1, p2] = await eventually('the replaced broker pod is gone', async () => {
      const pods = await podIPs(runtimeA);
      return pods.length === 2 ? pods : undefined;
    }, 60_000);
    const opts = { username: 'alice', password: 'alice-a-2', protocolVersion: 5 as const };
    const got: number[] = [];
    // A persistent session (v5 session expiry) subscribed on pod 1; the publisher on pod 2.
    let sub = await connect(`mqtt://${p1!.ip}:1883`, { ...opts, clientId: 'ha-sub', clean: false, properties: { sessionExpiryInterval: 300 } });
    sub.on('message', (_t, p) => got.push(Number(p.toString())));
    await sub.subscribeAsync('devices/ha/t', { qos: 1 });
    const pub = await connect(`mqtt://${p2!.ip}:1883`, { ...opts, clientId: 'ha-pub' });
    let sent = 0;
    const publish = async (n: number) => {
      for (const end = sent + n; sent < end; sent++) await pub.publishAsync('devices/ha/t', String(sent), { qos: 1 });
    };
    await publish(100);
    await eventually('pod 2 → pod 1: the first 100 arrive', async () => got.length >= 100, 20_000);
    // Pod 1 goes away with the subscriber on it; publishing on pod 2 goes on meanwhile.
    sub.removeAllListeners('message');
    sub.end(true);
    await kubectl(['delete', 'pod', p1!.name, '-n', runtimeA, '--wait=false']);
    await publish(100);
    const ip = await clusterIP(runtimeA);
    const after: number[] = [];
    sub = mqtt.connect(`mqtt://${ip}:1883`, { ...opts, clientId: 'ha-sub', clean: false, properties: { sessionExpiryInterval: 300 }, reconnectPeriod: 500 });
    sub.on('message', (_t, p) => after.push(Number(p.toString())));
    await eventually('the session resumed through the Service delivers what was published meanwhile', async () => new Set(after).size >= 100, 60_000);
    const received = new Set([...got, ...after]);
    const lost = [...Array(sent).keys()].filter((i) => !received.has(i));
    console.log(`[node] HA: sent ${sent}, lost ${lost.length}, duplicates ${got.length + after.length - received.size}`);
    expect(lost).toEqual([]);
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  }, 300_000);

  it('a config change rolls the pods one at a time; QoS 1 traffic through the Service goes on and loses nothing', async () => {
    await apply(tenant(A, { password: 'alice-a-2', replicas: 2 }));
    // Ready at this generation: both pods of the current template, no older pod left serving.
    expect((await readyDeployment(A)).status?.readyReplicas).toBe(2);
    const before = (await brokerPods(runtimeA)).map((p) => p.name);
    const ip = await clusterIP(runtimeA);
    const client = await eventually('a client connected through the Service', () =>
      connect(`mqtt://${ip}:1883`, { username: 'alice', password: 'alice-a-2', clientId: 'through-rollout', reconnectPeriod: 300 }).catch(() => undefined));
    let reconnects = 0;
    let errors = 0;
    client.on('reconnect', () => reconnects++);
    // A reconnect that lands on a pod being replaced may time out; MQTT.js then tries again.
    client.on('error', () => errors++);
    // A persistent subscriber through the Service too, and a publisher that never stops: every
    // QoS 1 message the broker acknowledged must reach the subscriber, across both pods' replacement.
    const received = new Set<number>();
    const sub = mqtt.connect(`mqtt://${ip}:1883`, { username: 'alice', password: 'alice-a-2', clientId: 'rollout-sub', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 300 }, reconnectPeriod: 300 });
    sub.on('message', (_t, p) => received.add(Number(p.toString())));
    await eventually('the rollout subscriber is subscribed', async () => sub.connected && (await sub.subscribeAsync('devices/rollout/q', { qos: 1 }).then(() => true, () => false)));
    const acked: number[] = [];
    let publishing = true;
    const traffic = (async () => {
      for (let i = 0; publishing; i++) {
        if (!client.connected) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        // Acknowledged = the broker took responsibility; an unacknowledged one may be lost (at least once is about acked messages).
        const ok = await Promise.race([client.publishAsync('devices/rollout/q', String(i), { qos: 1 }).then(() => true, () => false), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
        if (ok) acked.push(i);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    // A changed limit changes the rendered config, hence the pod template's config hash: a rollout.
    await apply(tenant(A, { password: 'alice-a-2', replicas: 2, maxConnections: 5000 }));
    let minReady = 2;
    await eventually('the rollout replaced both pods', async () => {
      const d = (await kubectl(['get', 'deployment', 'broker', '-n', runtimeA, '-o', 'jsonpath={.status.readyReplicas} {.status.updatedReplicas} {.status.replicas}'])).stdout.split(' ').map(Number);
      minReady = Math.min(minReady, d[0] ?? 0);
      const now = (await brokerPods(runtimeA)).map((p) => p.name);
      return d[0] === 2 && d[1] === 2 && d[2] === 2 && now.every((n) => !before.includes(n));
    }, 150_000);
    // The old pods drain (their clients get 0x8B and reconnect) until they are gone entirely.
    await eventually('the old pods are gone', async () => {
      const r = await kubectl(['get', 'pods', '-n', runtimeA, '-l', 'app.kubernetes.io/name=enclave-broker', '-o', 'name']);
      return r.stdout.trim().split('\n').filter(Boolean).length === 2;
    }, 90_000);
    publishing = false;
    await traffic;
    await eventually('every acknowledged message reached the subscriber', async () => acked.every((i) => received.has(i)), 60_000).catch(() => undefined);
    const lost = acked.filter((i) => !received.has(i));
    console.log(`[node] rollout: at least ${minReady} of 2 pods ready throughout; the client reconnected ${reconnects} time(s), ${errors} attempt(s) failed; ${acked.length} QoS 1 messages acknowledged, ${lost.length} lost`);
    expect(minReady).toBeGreaterThanOrEqual(1);
    expect(acked.length).toBeGreaterThan(50);
    expect(lost).toEqual([]);
    await sub.endAsync();
    await eventually('the client publishes again', async () => {
      if (!client.connected) return false;
      return client.publishAsync('devices/rollout/t', 'after the rollout', { qos: 1 }).then(() => true, () => false);
    });
    await client.endAsync();
  }, 300_000);

  it('reports a broker that crashes at start as CrashLoopBackOff with its exit code', async () => {
    // The operator image as a broker: it exits at once (no API credentials in a broker pod).
    await apply(tenant(B, { password: 'alice-b', chain: ['http', 'users'], image: world().node.images.operator }));
    const m = await notReadyBecause(B, 'CrashLoopBackOff', 150_000);
    expect(condition(m, 'Ready')?.message).toMatch(/container broker keeps exiting \(last exit: code [1-9]/);
  }, 180_000);

  it('deletes gracefully: v5 clients get DISCONNECT 0x8B, then the runtime namespace is gone', async () => {
    const ip = await clusterIP(runtimeA);
    const client = await connect(`mqtt://${ip}:1883`, { username: 'alice', password: 'alice-a-2', clientId: 'v5-at-delete', protocolVersion: 5 });
    const reason = new Promise<number | undefined>((resolve) => client.once('disconnect', (p) => resolve(p.reasonCode)));
    await deleteAndWait(MD, 'broker', A, 120_000);
    expect(await reason).toBe(0x8b);
    expect((await kubectl(['get', 'namespace', runtimeA], { allowFailure: true })).code).not.toBe(0);
    client.end(true);
  }, 180_000);

  it('allows helm uninstall once no MqttDeployment is left; the CRDs stay', async () => {
    await deleteAndWait(MD, 'broker', B, 120_000);
    const r = await helm(['uninstall', 'enclave', '-n', RELEASE_NS, '--wait', '--timeout', '120s'], { timeoutMs: 130_000 });
    expect(r.code).toBe(0);
    expect((await kubectl(['get', 'deployment', '-n', RELEASE_NS, '-o', 'name'])).stdout).toBe('');
    await kubectl(['get', 'crd/mqttdeployments.mqtt.enclave.dev']);
  }, 300_000);
});
