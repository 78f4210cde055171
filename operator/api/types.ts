// TypeScript types of the three custom resources (group mqtt.enclave.dev, version v1alpha1).
// crds/*.yaml is the schema the API server enforces; test/unit/operator/crd-types.test.ts keeps the
// field paths declared here (SPEC_FIELDS) and the YAML in step. Optional fields are optional because
// the operator never writes defaults back into spec (GitOps tools would fight it): it applies
// defaults when it reads.

export const GROUP = 'mqtt.enclave.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface LocalRef {
  name: string;
}

export interface SecretKeyRef {
  name: string;
  key?: string;
}

export interface Condition {
  type: 'Ready' | 'Progressing' | 'Degraded';
  status: 'True' | 'False' | 'Unknown';
  observedGeneration: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

// ── MqttDeployment ──────────────────────────────────────────────────────────────────────────

export type ListenerProtocol = 'mqtt' | 'mqtts' | 'ws' | 'wss';
export type ClientAuth = 'none' | 'optional' | 'required';

export interface ListenerSpec {
  name: string;
  protocol: ListenerProtocol;
  /** Defaults: mqtt 1883, mqtts 8883, ws 8083, wss 8084. */
  port?: number;
  /** WebSocket path (ws/wss), default /mqtt. */
  path?: string;
  /** TlsCertificate serving this listener (required for mqtts/wss). */
  tlsCertificateRef?: LocalRef;
  clientAuth?: ClientAuth;
  /** TlsCertificate whose CA bundle verifies client certificates (required unless clientAuth none). */
  clientCaRef?: LocalRef;
}

export interface AuthenticationSpec {
  chain?: LocalRef[];
  allowAnonymous?: boolean;
}

export interface AuthorizationSpec {
  chain?: LocalRef[];
  noMatch?: 'allow' | 'deny';
  denyAction?: 'ignore' | 'disconnect';
  cache?: { enabled?: boolean; maxSize?: number; ttl?: string };
}

/** A NetworkPolicyPeer, passed through to the runtime namespace's ingress policy. */
export interface NetworkPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export interface LimitsSpec {
  maxConnections?: number;
  maxPacketSize?: number;
  maxInflight?: number;
  maxQueuedMessages?: number;
  publishRatePerSecond?: number;
}

export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface MqttDeploymentSpec {
  replicas?: number;
  image?: string;
  resources?: ResourceRequirements;
  nodeSelector?: Record<string, string>;
  tolerations?: Record<string, unknown>[];
  affinity?: Record<string, unknown>;
  listeners?: ListenerSpec[];
  authentication?: AuthenticationSpec;
  authorization?: AuthorizationSpec;
  network?: { allowFrom?: NetworkPeer[] };
  limits?: LimitsSpec;
  state?: StateSpec;
  deletionPolicy?: 'Delete' | 'Retain';
}

/** Where the replicas keep their shared state (see the CRD's description of spec.state). */
export interface StateSpec {
  backend: 'memory' | 'redis';
  redis?: {
    managed?: { persistence?: { size: string; storageClassName?: string } };
    external?: {
      secretRef: { name: string };
      egress?: { cidr?: string; namespace?: string; podLabels?: Record<string, string>; port: number };
    };
  };
}

export interface Endpoint {
  listener: string;
  protocol: ListenerProtocol;
  /** In-cluster address, e.g. broker.enclave-team-a-prod.svc:1883 */
  address: string;
}

export interface MqttDeploymentStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  namespace?: string;
  endpoints?: Endpoint[];
  /** First endpoint, for the printer column. */
  endpoint?: string;
  replicas?: number;
  readyReplicas?: number;
  configHash?: string;
}

export interface MqttDeployment {
  apiVersion: typeof API_VERSION;
  kind: 'MqttDeployment';
  metadata: ObjectMeta;
  spec: MqttDeploymentSpec;
  status?: MqttDeploymentStatus;
}

// ── AuthSource ──────────────────────────────────────────────────────────────────────────────

export type AuthSourceType = 'builtin' | 'postgres' | 'mysql' | 'redis' | 'http' | 'jwt' | 'x509';

export interface PasswordHashSpec {
  algorithm: 'plain' | 'md5' | 'sha' | 'sha256' | 'sha512' | 'bcrypt' | 'pbkdf2';
  saltPosition?: 'prefix' | 'suffix' | 'disable';
  macFun?: 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
  iterations?: number;
  dkLength?: number;
}

export interface BackendTlsSpec {
  enabled?: boolean;
  /** Secret with ca.crt (and optionally tls.crt/tls.key for client auth to the backend). */
  secretRef?: LocalRef;
  serverName?: string;
  insecureSkipVerify?: boolean;
}

export interface SqlSpec {
  host: string;
  port?: number;
  database: string;
  /** Secret with `username` and `password` keys. */
  credentialsSecretRef?: LocalRef;
  tls?: BackendTlsSpec;
  poolSize?: number;
  authQuery?: string;
  superuserQuery?: string;
  aclQuery?: string;
}

export interface RedisSpec {
  host: string;
  port?: number;
  db?: number;
  credentialsSecretRef?: LocalRef;
  tls?: BackendTlsSpec;
  authCommand?: string;
  aclCommand?: string;
}

export interface HttpSpec {
  url: string;
  aclUrl?: string;
  method?: 'GET' | 'POST';
  bodyFormat?: 'json' | 'form';
  headers?: Record<string, string>;
  body?: Record<string, string>;
  bearerTokenSecretRef?: SecretKeyRef;
  tls?: BackendTlsSpec;
}

export interface JwtSpec {
  from?: 'password' | 'username';
  secretRef?: SecretKeyRef;
  secretBase64?: boolean;
  publicKeySecretRef?: SecretKeyRef;
  jwksSecretRef?: SecretKeyRef;
  jwksUrl?: string;
  jwksRefresh?: string;
  algorithms?: string[];
  issuer?: string;
  audience?: string;
  verifyClaims?: Record<string, string>;
  aclClaim?: string;
  disconnectOnExpiry?: boolean;
}

export interface X509Spec {
  identityFrom?: 'cn' | 'dns' | 'email' | 'uri' | 'subject';
  superusers?: string[];
}

export interface BuiltinSpec {
  /** Secret holding the users/ACL file (YAML: users[], acl[]). */
  secretRef: SecretKeyRef;
}

/**
 * Where an auth backend lives: an address range (`cidr`, for backends outside the cluster) or pods
 * of a namespace (`namespace` + `podLabels`, for a backend inside the cluster reached through its
 * Service: NetworkPolicies match the pod a Service leads to, never the Service's ClusterIP).
 */
export interface EgressRule {
  cidr?: string;
  namespace?: string;
  podLabels?: Record<string, string>;
  port: number;
  protocol?: 'TCP' | 'UDP';
}

export interface AuthSourceSpec {
  type: AuthSourceType;
  builtin?: BuiltinSpec;
  postgres?: SqlSpec;
  mysql?: SqlSpec;
  redis?: RedisSpec;
  http?: HttpSpec;
  jwt?: JwtSpec;
  x509?: X509Spec;
  passwordHash?: PasswordHashSpec;
  /** Go-style duration, e.g. 5s. */
  timeout?: string;
  onBackendFailure?: 'deny' | 'ignore';
  egress?: EgressRule[];
}

export interface AuthSourceStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  /** MqttDeployments (names, same namespace) whose chains reference this source. */
  usedBy?: string[];
}

export interface AuthSource {
  apiVersion: typeof API_VERSION;
  kind: 'AuthSource';
  metadata: ObjectMeta;
  spec: AuthSourceSpec;
  status?: AuthSourceStatus;
}

// ── TlsCertificate ──────────────────────────────────────────────────────────────────────────

export interface IssueSpec {
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Go-style duration; default 2160h (90 days). */
  duration?: string;
  /** Go-style duration; default 720h (30 days). */
  renewBefore?: string;
  keyAlgorithm?: 'ECDSA-P256' | 'ECDSA-P384' | 'RSA-2048' | 'RSA-4096';
}

export interface TlsCertificateSpec {
  /** An existing kubernetes.io/tls Secret (e.g. from cert-manager); watched for rotation. */
  secretRef?: LocalRef;
  /** Issue from the tenant's CA, which the operator keeps. */
  issue?: IssueSpec;
}

export interface TlsCertificateStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  notBefore?: string;
  notAfter?: string;
  renewalTime?: string;
  serialNumber?: string;
  sha256Fingerprint?: string;
}

export interface TlsCertificate {
  apiVersion: typeof API_VERSION;
  kind: 'TlsCertificate';
  metadata: ObjectMeta;
  spec: TlsCertificateSpec;
  status?: TlsCertificateStatus;
}

export const DEFAULT_PORTS: Record<ListenerProtocol, number> = { mqtt: 1883, mqtts: 8883, ws: 8083, wss: 8084 };
