// The platform policy: what a tenant may ask of the cluster through an MqttDeployment or an
// AuthSource, set by the platform team in the Helm chart (values `policy`, passed to the operator
// as ENCLAVE_POLICY JSON). The chart's ValidatingAdmissionPolicy refuses violations at admission;
// this module is the operator's own check (pure), for clusters or objects admission did not cover
// (the policy tightened after the object was accepted): a violation is reported in status naming
// the policy, and nothing of the violating spec is applied. docs/security.md explains each one.
import type { AuthSource, EgressRule, MqttDeployment, ResourceRequirements } from '../api/types.ts';
import { cidrsOverlap, parseCidr } from './cidr.ts';
import { parseQuantity } from './quantity.ts';

export const POLICY = {
  images: 'AllowedBrokerImages',
  scheduling: 'TenantScheduling',
  ceilings: 'ResourceCeilings',
  egress: 'DeniedEgress',
} as const;

export interface PlatformPolicy {
  /** Repositories spec.image may name (then `:tag` or `@digest`); the operator's default image's repository is always allowed. */
  allowedImageRepositories: string[];
  /** Whether tenants may set spec.tolerations / nodeSelector / affinity; when not, `scheduling` applies to every broker pod. */
  tenantScheduling: boolean;
  scheduling: { nodeSelector?: Record<string, string>; tolerations?: Record<string, unknown>[]; affinity?: Record<string, unknown> };
  /** Per MqttDeployment; they also size the ResourceQuota and LimitRange of every runtime namespace. */
  ceilings: { replicas: number; cpu: string; memory: string };
  /** Egress CIDRs (AuthSources', an external state backend's) may not overlap these: the cluster's pod and service ranges, link-local. */
  deniedEgressCidrs: string[];
  /** Namespaces an AuthSource egress entry may name besides its own (`*`: any). */
  allowedEgressNamespaces: string[];
  /** The managed state backend (spec.state.redis.managed): the platform picks its image, a tenant cannot. */
  stateBackend: { redisImage: string };
}

/** The chart's defaults (values.yaml `policy`; test/unit/chart/policy-defaults.test.ts keeps them equal). */
export const DEFAULT_POLICY: PlatformPolicy = {
  allowedImageRepositories: [],
  tenantScheduling: false,
  scheduling: {},
  ceilings: { replicas: 3, cpu: '2', memory: '2Gi' },
  // kubeadm/kind/minikube pods and services, k3s pods and services, IPv4 and IPv6 link-local.
  deniedEgressCidrs: ['10.244.0.0/16', '10.96.0.0/12', '10.42.0.0/16', '10.43.0.0/16', '169.254.0.0/16', 'fe80::/10'],
  // In-cluster backends only in the tenant's own namespace: not other teams', not kube-system.
  allowedEgressNamespaces: [],
  stateBackend: { redisImage: 'docker.io/library/redis:7.4-bookworm' },
};

export class PolicyConfigError extends Error {}

/** ENCLAVE_POLICY (JSON, the chart's `policy` values) over the defaults; a malformed policy stops the operator. */
export function policyFromJson(text: string | undefined): PlatformPolicy {
  if (text === undefined || text.trim() === '') return DEFAULT_POLICY;
  let raw: Partial<PlatformPolicy>;
  try {
    raw = JSON.parse(text) as Partial<PlatformPolicy>;
  } catch {
    throw new PolicyConfigError('ENCLAVE_POLICY is not valid JSON');
  }
  const policy: PlatformPolicy = {
    allowedImageRepositories: raw.allowedImageRepositories ?? DEFAULT_POLICY.allowedImageRepositories,
    tenantScheduling: raw.tenantScheduling ?? DEFAULT_POLICY.tenantScheduling,
    scheduling: raw.scheduling ?? DEFAULT_POLICY.scheduling,
    ceilings: { ...DEFAULT_POLICY.ceilings, ...raw.ceilings },
    deniedEgressCidrs: raw.deniedEgressCidrs ?? DEFAULT_POLICY.deniedEgressCidrs,
    allowedEgressNamespaces: raw.allowedEgressNamespaces ?? DEFAULT_POLICY.allowedEgressNamespaces,
    stateBackend: { ...DEFAULT_POLICY.stateBackend, ...raw.stateBackend },
  };
  const problems = [
    ...(Number.isInteger(policy.ceilings.replicas) && policy.ceilings.replicas >= 1 ? [] : ['ceilings.replicas must be an integer ≥ 1']),
    ...(parseQuantity(policy.ceilings.cpu) === undefined ? ['ceilings.cpu is not a quantity'] : []),
    ...(parseQuantity(policy.ceilings.memory) === undefined ? ['ceilings.memory is not a quantity'] : []),
    ...policy.deniedEgressCidrs.filter((c) => parseCidr(c) === undefined).map((c) => `deniedEgressCidrs: ${c} is not a CIDR`),
    ...(typeof policy.stateBackend.redisImage === 'string' && policy.stateBackend.redisImage !== '' ? [] : ['stateBackend.redisImage must be an image reference']),
  ];
  if (problems.length > 0) throw new PolicyConfigError(`ENCLAVE_POLICY: ${problems.join('; ')}`);
  return policy;
}

/** `registry/path/name` of an image reference (tag and digest dropped). */
export function imageRepository(image: string): string {
  const noDigest = image.split('@')[0]!;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

export function allowedRepositories(policy: PlatformPolicy, defaultImage: string): string[] {
  return [...new Set([imageRepository(defaultImage), ...policy.allowedImageRepositories])];
}

/** Whether `image` is exactly one of the repositories, then nothing, a `:tag` or an `@digest`. */
export function imageAllowed(image: string, repositories: readonly string[]): boolean {
  return repositories.some((r) => image === r || image.startsWith(`${r}:`) || image.startsWith(`${r}@`));
}

const RESOURCE_NAMES = ['cpu', 'memory'] as const;

function resourceViolations(resources: ResourceRequirements | undefined, ceilings: PlatformPolicy['ceilings']): string[] {
  const out: string[] = [];
  for (const kind of ['requests', 'limits'] as const) {
    for (const [name, value] of Object.entries(resources?.[kind] ?? {})) {
      const path = `spec.resources.${kind}.${name}`;
      if (!(RESOURCE_NAMES as readonly string[]).includes(name)) {
        out.push(`${path}: only cpu and memory may be requested (policy ${POLICY.ceilings})`);
        continue;
      }
      const ceiling = ceilings[name as (typeof RESOURCE_NAMES)[number]];
      const amount = parseQuantity(value);
      if (amount === undefined) out.push(`${path}: ${value} is not a quantity`);
      else if (amount > parseQuantity(ceiling)!) out.push(`${path}: ${value} is above the ceiling ${ceiling} (policy ${POLICY.ceilings})`);
    }
  }
  return out;
}

/** What in an MqttDeployment's spec the platform policy does not allow (empty: nothing). */
export function mqttDeploymentViolations(md: MqttDeployment, policy: PlatformPolicy, defaultImage: string): string[] {
  const s = md.spec;
  const out: string[] = [];
  const repositories = allowedRepositories(policy, defaultImage);
  if (s.image !== undefined && !imageAllowed(s.image, repositories)) {
    out.push(`spec.image ${s.image} is not from an allowed repository (policy ${POLICY.images}: ${repositories.join(', ')})`);
  }
  if (!policy.tenantScheduling) {
    for (const field of ['nodeSelector', 'tolerations', 'affinity'] as const) {
      if (s[field] !== undefined) out.push(`spec.${field}: tenants may not set scheduling; the platform's applies (policy ${POLICY.scheduling})`);
    }
  }
  if (s.replicas !== undefined && s.replicas > policy.ceilings.replicas) {
    out.push(`spec.replicas: ${s.replicas} is above the ceiling ${policy.ceilings.replicas} (policy ${POLICY.ceilings})`);
  }
  out.push(...resourceViolations(s.resources, policy.ceilings));
  const stateEgress = s.state?.redis?.external?.egress;
  if (stateEgress !== undefined) out.push(...egressViolations([stateEgress], md.metadata.namespace, policy, 'spec.state.redis.external.egress', 'the MqttDeployment\'s own'));
  return out;
}

/**
 * Egress entries of an AuthSource that reach into the cluster where the platform does not allow
 * it: a range overlapping a denied one (pod and service ranges, link-local), or the pods of
 * another namespace than the source's own that the policy does not list.
 */
export function authSourceViolations(source: AuthSource, policy: PlatformPolicy): string[] {
  return egressViolations(source.spec.egress ?? [], source.metadata.namespace, policy, 'spec.egress', 'the AuthSource\'s own');
}

/**
 * The one egress rule set (policy DeniedEgress) for every way a tenant opens the default deny: an
 * AuthSource's backends and an external state backend (spec.state.redis.external.egress). `path`
 * names the field: a list gets `[i]`, a single rule (the state backend's) is named as it is.
 */
export function egressViolations(rules: readonly Pick<EgressRule, 'cidr' | 'namespace'>[], ownNamespace: string, policy: PlatformPolicy, path: string, own: string): string[] {
  const namespaces = policy.allowedEgressNamespaces;
  return rules.flatMap((e, i) => {
    const at = path === 'spec.egress' ? `${path}[${i}]` : path;
    if (e.namespace !== undefined) {
      const allowed = e.namespace === ownNamespace || namespaces.includes('*') || namespaces.includes(e.namespace);
      return allowed ? [] : [`${at}.namespace ${e.namespace} is not an allowed egress namespace (policy ${POLICY.egress}: ${own}${namespaces.length > 0 ? `, ${namespaces.join(', ')}` : ''})`];
    }
    const denied = e.cidr === undefined ? undefined : policy.deniedEgressCidrs.find((d) => cidrsOverlap(e.cidr!, d));
    return denied === undefined ? [] : [`${at}.cidr ${e.cidr} overlaps the denied range ${denied} (policy ${POLICY.egress})`];
  });
}
