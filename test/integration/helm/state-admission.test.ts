// The chart's ValidatingAdmissionPolicy for MqttDeployments judges an external state backend's
// egress (spec.state.redis.external.egress) by policy DeniedEgress, like an AuthSource's: rendered
// from the chart, installed in the real API server (its CEL compiled and type-checked there), bound
// to this file's namespace only, and exercised with server-side dry runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { helm, kubectl } from '../../support/world.ts';
import { ensureNamespace, installCrds } from '../../support/operator.ts';
import { eventually } from '../../support/wait.ts';
import { chartDir } from './helm.ts';

const NS = 'stadm-tenant';
const API = 'mqtt.enclave.dev/v1alpha1';
type Doc = { kind: string; metadata: { name: string }; spec: Record<string, unknown>; status?: { typeChecking?: { expressionWarnings?: unknown[] } } };
let names: string[] = [];

const md = (name: string, egress: Record<string, unknown>) => ({
  apiVersion: API, kind: 'MqttDeployment', metadata: { name, namespace: NS },
  spec: { replicas: 2, state: { backend: 'redis', redis: { external: { secretRef: { name: 'state' }, egress } } } },
});

async function dryRun(obj: unknown): Promise<{ code: number; stderr: string }> {
  return kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: JSON.stringify(obj), allowFailure: true });
}

beforeAll(async () => {
  await installCrds();
  await ensureNamespace(NS);
  const out = await helm(['template', 'stadm', chartDir, '-n', 'stadm-system', '--set', 'policy.allowedEgressNamespaces={data}']);
  const docs = parseAllDocuments(out.stdout).map((d) => d.toJS() as Doc | null).filter((d): d is Doc => d !== null);
  const policy = docs.find((d) => d.kind === 'ValidatingAdmissionPolicy' && d.metadata.name.endsWith('-mqttdeployments'))!;
  const binding = docs.find((d) => d.kind === 'ValidatingAdmissionPolicyBinding' && d.metadata.name.endsWith('-mqttdeployments'))!;
  // Only this file's namespace: other test files share the API server and run without admission.
  binding.spec['matchResources'] = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } } };
  names = [policy.metadata.name, binding.metadata.name];
  await kubectl(['apply', '--server-side', '-f', '-'], { input: [policy, binding].map((o) => JSON.stringify(o)).join('\n') });
  await eventually('the admission policy in force', async () => (await dryRun(md('probe', { cidr: '10.96.0.0/16', port: 6379 }))).stderr.includes('DeniedEgress'), 30_000);
});

afterAll(async () => {
  if (names.length === 2) {
    await kubectl(['delete', 'validatingadmissionpolicybinding', names[1]!, '--ignore-not-found']);
    await kubectl(['delete', 'validatingadmissionpolicy', names[0]!, '--ignore-not-found']);
  }
});

describe('external state egress at admission (policy DeniedEgress)', () => {
  it('compiles without type-checking warnings', async () => {
    const r = await kubectl(['get', 'validatingadmissionpolicy', names[0]!, '-o', 'json']);
    expect((JSON.parse(r.stdout) as Doc).status?.typeChecking?.expressionWarnings ?? []).toEqual([]);
  });

  it.each([
    ['a denied range', { cidr: '10.96.0.0/16', port: 6379 }, 'spec.state.redis.external.egress.cidr overlaps a denied range (policy DeniedEgress'],
    ['a range holding a denied one', { cidr: '10.0.0.0/8', port: 6379 }, 'policy DeniedEgress'],
    ['another namespace', { namespace: 'kube-system', port: 6379 }, "an in-cluster state backend may only be in the MqttDeployment's own namespace or in data (policy DeniedEgress)"],
  ])('refuses %s', async (_what, egress, message) => {
    const r = await dryRun(md('bad', egress));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(message);
  });

  it.each([
    ['an outside range', { cidr: '203.0.113.0/24', port: 6380 }],
    ['its own namespace', { namespace: NS, podLabels: { app: 'redis' }, port: 6379 }],
    ['an allowed namespace', { namespace: 'data', port: 6379 }],
  ])('accepts %s', async (_what, egress) => {
    const r = await dryRun(md('good', egress));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('accepts every other shape of spec.state (no egress, managed, memory, none)', async () => {
    const base = { apiVersion: API, kind: 'MqttDeployment', metadata: { name: 'other', namespace: NS } };
    for (const spec of [
      { replicas: 2, state: { backend: 'redis', redis: { external: { secretRef: { name: 'state' } } } } },
      { replicas: 2, state: { backend: 'redis', redis: { managed: { persistence: { size: '1Gi' } } } } },
      { state: { backend: 'memory' } },
      {},
    ]) {
      const r = await dryRun({ ...base, spec });
      expect(r.stderr, JSON.stringify(spec)).toBe('');
    }
  });
});
