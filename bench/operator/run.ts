// `npm run bench:operator [-- --n 200] [-- --rss-n 1000] [-- --idle-seconds 60] [-- --quick]`
// On a private control plane (etcd + kube-apiserver + kube-controller-manager, test/support):
//  1. baseline: `kubectl apply --server-side` of exactly the objects the operator would create for N
//     MqttDeployments (without the CRs themselves, which only makes the baseline faster),
//     rendered by the operator's own pure builders, timed;
//  2. the operator (its own process from the compiled JavaScript, as the image runs it): N MqttDeployments applied at once, timed
//     until every one reports status.observedGeneration == generation with a config hash;
//  3. API writes the operator sends during an idle window that includes a full resync (target 0);
//  4. operator RSS (/proc) once RSS-N MqttDeployments are reconciled (target ≤ 150 MiB).
// The cluster also holds BYSTANDERS Secrets of 4 KiB (`--bystanders`) that no tenant opted in, as
// other applications' Secrets would be: the operator's Secret cache must not hold them (its RSS at
// start says whether it does).
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from '../../test/support/control-plane.ts';
import { kubectl as kubectlFor } from '../../test/support/kube.ts';
import { repoRoot as root } from '../../test/support/paths.ts';
import { freePort, spawnService, waitUntilReady, type ServiceProcess } from '../../test/support/process.ts';
import { sleep } from '../../test/support/wait.ts';
import { desiredState } from '../../operator/resources/index.ts';
import type { AuthSource, MqttDeployment } from '../../operator/api/types.ts';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const quick = args.includes('--quick');
const N = flag('--n', quick ? 20 : 200);
const RSS_N = flag('--rss-n', quick ? 50 : 1000);
const IDLE_S = flag('--idle-seconds', quick ? 15 : 60);
const RESYNC_S = Math.max(5, Math.floor(IDLE_S / 2));
const BYSTANDERS = flag('--bystanders', quick ? 500 : 2000);
const API = 'mqtt.enclave.dev/v1alpha1';
const OPERATOR_NS = 'enclave-system';

const log = (line: string): void => console.log(`[bench:operator] ${line}`);

function tenantObjects(ns: string): unknown[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'users', namespace: ns, labels: { 'mqtt.enclave.dev/allow-reference': 'true' } }, stringData: { 'users.yaml': 'users: []\nacl: []\n' } },
    { apiVersion: API, kind: 'AuthSource', metadata: { name: 'builtin', namespace: ns }, spec: { type: 'builtin', builtin: { secretRef: { name: 'users', key: 'users.yaml' } }, passwordHash: { algorithm: 'bcrypt' } } },
  ];
}

function mqttDeployment(ns: string, i: number): MqttDeployment {
  return {
    apiVersion: API,
    kind: 'MqttDeployment',
    metadata: { name: `md-${i}`, namespace: ns },
    spec: { listeners: [{ name: 'mqtt', protocol: 'mqtt' }, { name: 'ws', protocol: 'ws' }], authentication: { chain: [{ name: 'builtin' }] }, authorization: { chain: [{ name: 'builtin' }] } },
  };
}

// The builders return client-node models, whose NetworkPolicy rule field is `_from` and LimitRange
// item field `_default` (the operator's client serializes through ObjectSerializer); kubectl wants
// the wire names.
const wire = (key: string, value: unknown): unknown => {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && ('_from' in value || '_default' in value)) {
    const { _from, _default, ...rest } = value as Record<string, unknown>;
    return { ...(_from !== undefined ? { from: _from } : {}), ...(_default !== undefined ? { default: _default } : {}), ...rest };
  }
  return value;
};
const toStream = (objs: unknown[]): string => objs.map((o) => JSON.stringify(o, wire)).join('\n');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'enclave-bench-operator-'));
  let cp: ControlPlane | undefined;
  let operator: ServiceProcess | undefined;
  try {
    log(`control plane in ${dir}`);
    cp = await startControlPlane({ dir: join(dir, 'kube') });
    const kubectl = (a: string[], input?: string) => kubectlFor(cp!, a, input === undefined ? {} : { input });
    await kubectl(['apply', '--server-side', '-f', join(root, 'crds')]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/mqttdeployments.mqtt.enclave.dev', 'crd/authsources.mqtt.enclave.dev', 'crd/tlscertificates.mqtt.enclave.dev']);
    await kubectl(['apply', '--server-side', '-f', '-'], toStream([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: OPERATOR_NS } }]));

    // 1. Baseline: the same object set, rendered by the operator's builders, applied by kubectl.
    const baseNs = 'bench-direct';
    await kubectl(['apply', '--server-side', '-f', '-'], toStream(tenantObjects(baseNs)));
    const source = tenantObjects(baseNs)[2] as AuthSource;
    const direct: unknown[] = [];
    for (let i = 0; i < N; i++) {
      const md = mqttDeployment(baseNs, i);
      md.metadata.uid = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      const state = desiredState({
        md,
        config: { defaultImage: 'enclave/broker:bench', operatorNamespace: OPERATOR_NS, clusterDomain: 'cluster.local' },
        sources: new Map([['builtin', source]]),
        secrets: new Map([['users', { 'users.yaml': Buffer.from('users: []\nacl: []\n').toString('base64') }]]),
        tls: new Map(),
      });
      direct.push(...state.entries.flatMap((e) => (e.object ? [e.object] : [])));
    }
    const directFile = join(dir, 'direct.json');
    writeFileSync(directFile, toStream(direct));
    let t = performance.now();
    await kubectl(['apply', '--server-side', '-f', directFile]);
    const directMs = performance.now() - t;
    log(`baseline: kubectl apply --server-side of ${direct.length} objects (${N} deployments' worth): ${(directMs / 1000).toFixed(1)} s`);

    // Other applications' Secrets (never opted in for Enclave), applied before the operator starts.
    const bystanders = Array.from({ length: BYSTANDERS }, (_, i) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `app-${i}`, namespace: 'bench-bystanders' }, stringData: { 'tls.key': 'k'.repeat(4096) } }));
    await kubectl(['apply', '--server-side', '-f', '-'], toStream([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench-bystanders' } }]));
    for (let i = 0; i < bystanders.length; i += 500) await kubectl(['apply', '--server-side', '-f', '-'], toStream(bystanders.slice(i, i + 500)));
    log(`${BYSTANDERS} bystander Secrets of 4 KiB in bench-bystanders (not opted in)`);

    // 2. Operator: N deployments applied at once, run as the image runs it: the compiled
    // JavaScript (dist/operator/main.js), not the TypeScript sources (type stripping costs RSS).
    const dist = join(dir, 'dist');
    execFileSync(join(root, 'node_modules/.bin/tsc'), ['-p', join(root, 'tsconfig.build.json'), '--outDir', dist], { stdio: 'inherit' });
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    // The image's NODE_OPTIONS (V8 heap sizing), read from its Dockerfile so the two cannot differ.
    const nodeOptions = /^ENV NODE_OPTIONS="([^"]*)"/m.exec(readFileSync(join(root, 'images/operator/Dockerfile'), 'utf8'))?.[1] ?? '';
    log(`operator runs dist/operator/main.js with NODE_OPTIONS="${nodeOptions}" (images/operator/Dockerfile)`);
    const metricsPort = await freePort();
    const opLog = join(dir, 'operator.log');
    operator = spawnService({
      name: 'operator',
      command: process.execPath,
      args: [join(dist, 'operator', 'main.js')],
      logFile: opLog,
      cwd: root,
      env: { ...process.env, NODE_OPTIONS: nodeOptions, KUBECONFIG: cp.kubeconfigPath, ENCLAVE_OPERATOR_NAMESPACE: OPERATOR_NS, ENCLAVE_METRICS_PORT: String(metricsPort), ENCLAVE_METRICS_HOST: '127.0.0.1', ENCLAVE_RESYNC_SECONDS: String(RESYNC_S), ENCLAVE_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', POD_NAME: 'bench' },
    });
    await waitUntilReady(operator, async () => (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).ok, 60_000);
    const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${operator!.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
    // utime + stime of the operator process, in seconds (CLK_TCK = 100 on Linux).
    const cpu = (): number => {
      const fields = readFileSync(`/proc/${operator!.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(fields[11]) + Number(fields[12])) / 100;
    };
    const rssIdleStart = rss();
    log(`operator RSS at start (no MqttDeployments yet, ${BYSTANDERS} bystander Secrets): ${rssIdleStart.toFixed(0)} MiB`);
    const writes = async (): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('enclave_operator_api_writes '));
      return Number(line?.split(' ')[1] ?? NaN);
    };
    const writesBy = async (): Promise<Record<string, number>> => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return Object.fromEntries([...text.matchAll(/^enclave_operator_api_writes_by_operation\{operation="(\w+)"\} (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
    };
    const reconciled = async (ns: string): Promise<number> => {
      const r = await kubectl(['get', 'mqttdeployments.mqtt.enclave.dev', '-n', ns, '-o', 'json']);
      const items = (JSON.parse(r.stdout) as { items: MqttDeployment[] }).items;
      return items.filter((m) => m.status?.configHash && m.status.observedGeneration === m.metadata.generation).length;
    };
    const waitAll = async (ns: string, n: number, limitMs: number): Promise<void> => {
      const deadline = Date.now() + limitMs;
      for (;;) {
        const done = await reconciled(ns);
        if (done >= n) return;
        if (Date.now() > deadline) throw new Error(`only ${done}/${n} reconciled after ${limitMs / 1000} s; log ${opLog}`);
        await sleep(500);
      }
    };

    const opNs = 'bench-operator';
    await kubectl(['apply', '--server-side', '-f', '-'], toStream(tenantObjects(opNs)));
    const mds = Array.from({ length: N }, (_, i) => mqttDeployment(opNs, i));
    const cpu0 = cpu();
    const writes0 = await writes();
    t = performance.now();
    await kubectl(['apply', '--server-side', '-f', '-'], toStream(mds));
    await waitAll(opNs, N, 30 * 60_000);
    const operatorMs = performance.now() - t;
    const operatorCpu = cpu() - cpu0;
    const reconcileWrites = (await writes()) - writes0;
    log(`operator: ${N} MqttDeployments applied → all reconciled: ${(operatorMs / 1000).toFixed(1)} s (${(operatorMs / directMs).toFixed(2)}× baseline; target ≤ 1.5×); operator CPU ${operatorCpu.toFixed(1)} s, ${reconcileWrites} API writes`);

    // 3. Idle: writes during a window holding at least one full resync (ENCLAVE_RESYNC_SECONDS).
    // Settle first: kube-controller-manager keeps updating the 200 Deployments' status (ReplicaSets,
    // Pending pods) for a while, and mirroring that into MqttDeployment status is a legitimate write.
    // The idle window starts once no write happened for 10 s (at most 5 min).
    const settleStart = Date.now();
    // kube-controller-manager first: every broker Deployment observed and at its replica count (its
    // status is what MqttDeployment status mirrors), then 10 s without an operator write.
    for (;;) {
      const r = await kubectl(['get', 'deployments', '-A', '-l', 'app.kubernetes.io/managed-by=enclave-operator', '-o', 'json']);
      const deps = (JSON.parse(r.stdout) as { items: { metadata: { generation: number }; spec: { replicas: number }; status?: { observedGeneration?: number; replicas?: number } }[] }).items;
      if (deps.length >= N && deps.every((d) => d.status?.observedGeneration === d.metadata.generation && (d.status.replicas ?? 0) === d.spec.replicas)) break;
      if (Date.now() - settleStart > 300_000) break;
      await sleep(2000);
    }
    for (let last = await writes(), quietSince = Date.now(); Date.now() - quietSince < 10_000 && Date.now() - settleStart < 300_000; ) {
      await sleep(1000);
      const w = await writes();
      if (w !== last) {
        last = w;
        quietSince = Date.now();
      }
    }
    log(`settled ${((Date.now() - settleStart) / 1000).toFixed(0)} s after the last reconcile`);
    const w0 = await writes();
    const byOp0 = await writesBy();
    await sleep(IDLE_S * 1000);
    const idleWrites = (await writes()) - w0;
    const byOperation = Object.entries(await writesBy()).map(([op, n]) => `${op} ${n - (byOp0[op] ?? 0)}`).filter((x) => !x.endsWith(' 0')).join(', ');
    log(`idle: ${idleWrites} API writes in ${IDLE_S} s with resync every ${RESYNC_S} s (target 0)${idleWrites > 0 ? ` — by operation: ${byOperation}` : ''}`);

    // 4. RSS at RSS_N deployments.
    if (RSS_N > N) {
      const more = Array.from({ length: RSS_N - N }, (_, i) => mqttDeployment(opNs, N + i));
      for (let i = 0; i < more.length; i += 200) await kubectl(['apply', '--server-side', '-f', '-'], toStream(more.slice(i, i + 200)));
      await waitAll(opNs, RSS_N, 60 * 60_000);
    }
    await sleep(5000);
    const rssMiB = rss();
    const metricsText = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const heapUsedMiB = Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(metricsText)?.[1] ?? NaN) / 1024 / 1024;
    const heapTotalMiB = Number(/^nodejs_heap_size_total_bytes (\S+)/m.exec(metricsText)?.[1] ?? NaN) / 1024 / 1024;
    log(`RSS with ${Math.max(N, RSS_N)} MqttDeployments reconciled: ${rssMiB.toFixed(0)} MiB (target ≤ 150 MiB); V8 heap used ${heapUsedMiB.toFixed(0)} of ${heapTotalMiB.toFixed(0)} MiB`);

    const result = { n: N, directSeconds: directMs / 1000, operatorSeconds: operatorMs / 1000, ratio: operatorMs / directMs, operatorCpuSeconds: operatorCpu, reconcileWrites, idleSeconds: IDLE_S, resyncSeconds: RESYNC_S, idleWrites, rssDeployments: Math.max(N, RSS_N), rssMiB, heapUsedMiB, heapTotalMiB, rssAtStartMiB: rssIdleStart, bystanderSecrets: BYSTANDERS };
    console.log(JSON.stringify(result));
    appendFileSync(join(dir, 'result.json'), JSON.stringify(result) + '\n');
  } finally {
    await operator?.stop(10_000);
    await cp?.stop();
    if (!args.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
