// The Flux `healthCheckExprs` printed in docs/gitops.md, evaluated by Kubernetes' own CEL (the
// cel-go Flux runs too) on real MqttDeployments: each expression becomes a ValidatingAdmissionPolicy
// in Warn mode on the status subresource, so writing a status makes the API server report which
// expressions hold. Cases: Ready at this generation, Ready of an older generation, Degraded, and
// no conditions at all (where an `all()` would wrongly be true).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl } from '../../support/world.ts';
import { installCrds } from '../../support/operator.ts';
import { repoRoot } from '../../support/paths.ts';
import { eventually } from '../../support/wait.ts';

const NS = 'flux-cel';
const MD = 'mqttdeployments.mqtt.enclave.dev';

/** `current:` and `failed:` of the MqttDeployment healthCheckExprs entry in docs/gitops.md. */
function fluxExprs(): { current: string; failed: string } {
  const doc = readFileSync(join(repoRoot, 'docs/gitops.md'), 'utf8');
  const block = doc.slice(doc.indexOf('healthCheckExprs:'));
  const current = /^\s+current: (.+)$/m.exec(block)?.[1];
  const failed = /^\s+failed: (.+)$/m.exec(block)?.[1];
  if (!current || !failed) throw new Error('docs/gitops.md has no healthCheckExprs current/failed for MqttDeployment');
  return { current, failed };
}

/** Flux binds the object's top-level fields as variables; an admission policy names them `object.…`. */
const forAdmission = (expr: string): string => expr.replace(/(?<![\w.])(status|metadata|spec)\./g, 'object.$1.');

const policy = (name: string, expr: string) => [
  {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: {
        resourceRules: [{ apiGroups: ['mqtt.enclave.dev'], apiVersions: ['v1alpha1'], operations: ['UPDATE'], resources: ['mqttdeployments/status'] }],
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } },
      },
      // Fails (→ a warning naming the policy) exactly when the Flux expression is true.
      validations: [{ expression: `!(${forAdmission(expr)})`, message: `${name}=true` }],
    },
  },
  {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name },
    spec: { policyName: name, validationActions: ['Warn'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } } } },
  },
];

const apply = (objects: unknown[]) => kubectl(['apply', '--server-side', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });

beforeAll(async () => {
  await installCrds();
  const { current, failed } = fluxExprs();
  await apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, ...policy('flux-current', current), ...policy('flux-failed', failed)]);
});

afterAll(async () => {
  await kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', 'flux-current', 'flux-failed', '--ignore-not-found']);
  await kubectl(['delete', 'namespace', NS, '--ignore-not-found', '--wait=false']);
});

const cond = (type: string, status: string, observedGeneration: number) => ({ type, status, reason: 'R', message: 'm', observedGeneration, lastTransitionTime: '2026-01-01T00:00:00Z' });

/** Writes `status` on an MqttDeployment of `generation`; returns which Flux expressions held. */
async function verdict(name: string, generation: number, status: Record<string, unknown>): Promise<{ current: boolean; failed: boolean }> {
  await apply([{ apiVersion: 'mqtt.enclave.dev/v1alpha1', kind: 'MqttDeployment', metadata: { name, namespace: NS }, spec: {} }]);
  if (generation > 1) await kubectl(['patch', MD, name, '-n', NS, '--type=merge', '-p', '{"spec":{"limits":{"maxConnections":500}}}']);
  const r = await kubectl(['patch', MD, name, '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  const md = JSON.parse((await kubectl(['get', MD, name, '-n', NS, '-o', 'json'])).stdout) as { metadata: { generation: number } };
  expect(md.metadata.generation).toBe(generation);
  return { current: r.stderr.includes('flux-current=true'), failed: r.stderr.includes('flux-failed=true') };
}

describe('the Flux healthCheckExprs in docs/gitops.md', () => {
  // The policies take a moment to be enforced after creation; a probe write shows when.
  beforeAll(async () => {
    await eventually('the admission policies take effect (a Ready probe status reports flux-current=true)', async () =>
      (await verdict('probe', 1, { observedGeneration: 1, conditions: [cond('Ready', 'True', 1)] })).current, 30_000, 500);
  });

  it.each([
    ['Ready at this generation', 'ready', 1, { observedGeneration: 1, conditions: [cond('Ready', 'True', 1), cond('Degraded', 'False', 1)] }, { current: true, failed: false }],
    ['Ready of an older generation', 'stale', 2, { observedGeneration: 1, conditions: [cond('Ready', 'True', 1)] }, { current: false, failed: false }],
    ['observed, Ready condition still old', 'half', 2, { observedGeneration: 2, conditions: [cond('Ready', 'True', 1)] }, { current: false, failed: false }],
    ['Degraded at this generation', 'degraded', 1, { observedGeneration: 1, conditions: [cond('Ready', 'False', 1), cond('Degraded', 'True', 1)] }, { current: false, failed: true }],
    ['Degraded of an older generation', 'old-degraded', 2, { observedGeneration: 1, conditions: [cond('Degraded', 'True', 1)] }, { current: false, failed: false }],
    ['no conditions at all', 'empty', 1, { observedGeneration: 1, conditions: [] }, { current: false, failed: false }],
  ] as [string, string, number, Record<string, unknown>, { current: boolean; failed: boolean }][])('%s', async (_what, name, generation, status, expected) => {
    expect(await verdict(name, generation, status)).toEqual(expected);
  });
});
