// What docs/gitops.md says about `kubectl wait --for=condition=Ready`, checked with the real
// kubectl and API server: a Ready condition only counts when status.observedGeneration and the
// condition's observedGeneration (when present) equal metadata.generation. The status is written
// here by hand, standing in for the operator, so each case is exact.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { kubectl } from '../../support/world.ts';
import { installCrds } from '../../support/operator.ts';
import { examplesDir } from './examples.ts';

const ns = 'wait-semantics';
const name = 'waited';

/** The builtin example's MqttDeployment, moved to this test's namespace. */
function deploymentManifest(): string {
  const docs = parseAllDocuments(readFileSync(`${examplesDir}/builtin/mqttdeployment.yaml`, 'utf8')).map((d) => d.toJS() as Record<string, unknown> & { kind?: string; metadata?: Record<string, unknown> });
  const d = docs.find((x) => x.kind === 'MqttDeployment');
  if (!d) throw new Error('examples/builtin/mqttdeployment.yaml has no MqttDeployment');
  return JSON.stringify({ ...d, metadata: { name, namespace: ns } });
}

async function setStatus(status: object): Promise<void> {
  await kubectl(['-n', ns, 'patch', `mqttdeployment/${name}`, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
}

async function waitReady(): Promise<boolean> {
  const r = await kubectl(['-n', ns, 'wait', `mqttdeployment/${name}`, '--for=condition=Ready', '--timeout=2s'], { allowFailure: true });
  return r.code === 0;
}

const ready = (observedGeneration?: number) => ({
  type: 'Ready',
  status: 'True',
  reason: 'Ready',
  message: 'all replicas ready',
  lastTransitionTime: '2026-01-01T00:00:00Z',
  ...(observedGeneration === undefined ? {} : { observedGeneration }),
});

beforeAll(async () => {
  await installCrds();
  await kubectl(['create', 'namespace', ns], { allowFailure: true });
  await kubectl(['apply', '--server-side', '-f', '-'], { input: deploymentManifest() });
  // Generation 2: the spec changed after the first reconcile.
  await kubectl(['-n', ns, 'patch', `mqttdeployment/${name}`, '--type=json', '-p', '[{"op":"add","path":"/spec/limits","value":{"maxConnections":500}}]']);
  const gen = await kubectl(['-n', ns, 'get', `mqttdeployment/${name}`, '-o', 'jsonpath={.metadata.generation}']);
  expect(gen.stdout).toBe('2');
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=60s']);
});

describe('kubectl wait --for=condition=Ready', () => {
  const cases: { name: string; status: object; returns: boolean }[] = [
    { name: 'Ready of the previous generation (both observedGenerations 1)', status: { observedGeneration: 1, conditions: [ready(1)] }, returns: false },
    { name: 'status observed, Ready condition still from generation 1', status: { observedGeneration: 2, conditions: [ready(1)] }, returns: false },
    { name: 'Ready condition without its own observedGeneration, status from generation 1', status: { observedGeneration: 1, conditions: [ready()] }, returns: false },
    { name: 'both at generation 2', status: { observedGeneration: 2, conditions: [ready(2)] }, returns: true },
    { name: 'no generations at all (kubectl cannot tell, and returns)', status: { observedGeneration: null, conditions: [ready()] }, returns: true },
  ];
  for (const c of cases) {
    it(`${c.returns ? 'returns' : 'keeps waiting'}: ${c.name}`, async () => {
      await setStatus({ observedGeneration: null, conditions: null });
      await setStatus(c.status);
      expect(await waitReady()).toBe(c.returns);
    });
  }
});
