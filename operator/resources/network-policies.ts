// NetworkPolicies of the runtime namespace: deny everything in and out, then allow exactly
// (1) listener ports from spec.network.allowFrom, (2) the admin port from the operator's namespace,
// (3) DNS, (4) egress to each referenced AuthSource's declared backends (an address range, or
// the pods of an in-cluster backend's namespace) and (5) egress to an external state backend
// (spec.state.redis.external.egress, same shape). The managed Redis' two policies are its own
// (resources/redis.ts). The state purge Job's pod carries the broker labels, so (3) and (5) let it
// reach the external Redis too (reconcile/state-purge.ts).
import type { V1NetworkPolicy, V1NetworkPolicyPeer } from '@kubernetes/client-node';
import { ADMIN_PORT, brokerSelector, ownerLabels } from '../api/names.ts';
import type { EgressRule } from '../api/types.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';
import { referencedSources, servedListeners } from './listeners.ts';
import { externalRedisSpec } from './state.ts';

export function networkPolicies(ctx: BuildContext): V1NetworkPolicy[] {
  const ns = targetNamespace(ctx.md);
  const labels = ownerLabels(ownerOf(ctx.md));
  const meta = (name: string) => ({ name, namespace: ns, labels });
  const pods = { matchLabels: brokerSelector() };
  const policies: V1NetworkPolicy[] = [
    { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('default-deny'), spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] } },
    {
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('allow-admin-from-operator'),
      spec: {
        podSelector: pods, policyTypes: ['Ingress'],
        ingress: [{ _from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ctx.config.operatorNamespace } } }], ports: [{ protocol: 'TCP', port: ADMIN_PORT }] }],
      },
    },
    {
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('allow-dns'),
      spec: {
        podSelector: pods, policyTypes: ['Egress'],
        egress: [{
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
          ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }],
        }],
      },
    },
  ];
  const allowFrom = (ctx.md.spec.network?.allowFrom ?? []) as V1NetworkPolicyPeer[];
  // Empty allowFrom means nobody outside the namespace: no listener policy at all (default deny holds).
  // No served listener means no policy either: a rule with an empty port list would allow EVERY port.
  const ports = servedListeners(ctx).map((l) => ({ protocol: 'TCP', port: l.port }));
  if (allowFrom.length > 0 && ports.length > 0) {
    policies.push({
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('allow-listeners'),
      spec: {
        podSelector: pods, policyTypes: ['Ingress'],
        ingress: [{ _from: allowFrom, ports }],
      },
    });
  }
  const egress = referencedSources(ctx.md)
    .flatMap((name) => ctx.sources.get(name)?.spec.egress ?? [])
    .map((e) => ({ to: [egressPeer(e)], ports: [{ protocol: e.protocol ?? 'TCP', port: e.port }] }));
  if (egress.length > 0) {
    policies.push({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('allow-auth-backends'), spec: { podSelector: pods, policyTypes: ['Egress'], egress } });
  }
  const state = externalRedisSpec(ctx.md)?.egress;
  if (state !== undefined) {
    policies.push({
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('allow-state-backend'),
      spec: { podSelector: pods, policyTypes: ['Egress'], egress: [{ to: [egressPeer(state)], ports: [{ protocol: 'TCP', port: state.port }] }] },
    });
  }
  return policies;
}

/**
 * An in-cluster backend is matched by its pods (the destination after the Service's translation),
 * an outside one by its address range. `podLabels` absent selects every pod of the namespace.
 */
function egressPeer(e: Pick<EgressRule, 'cidr' | 'namespace' | 'podLabels'>): V1NetworkPolicyPeer {
  if (e.namespace !== undefined) {
    return { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': e.namespace } }, podSelector: { matchLabels: e.podLabels ?? {} } };
  }
  return { ipBlock: { cidr: e.cidr ?? '' } };
}

/** Names of every policy networkPolicies() can produce: the ones it did not produce this time are deleted. */
export const NETWORK_POLICY_NAMES = ['default-deny', 'allow-admin-from-operator', 'allow-dns', 'allow-listeners', 'allow-auth-backends', 'allow-state-backend'];
