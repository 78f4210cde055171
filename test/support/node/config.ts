// Owns the test node's configuration files, as pure functions of the node directory and the
// address plan (node-network.ts): containerd's config (CRI plugin, runc, CNI paths all under the
// node directory), the CNI network (a bridge of its own, no default route in pods), the kubelet's
// configuration file, and the cluster DNS objects (CoreDNS Deployment + the kube-dns Service).
import { join } from 'node:path';
import { stringify } from 'yaml';
import { BRIDGE, CLUSTER_DNS_IP, CLUSTER_DOMAIN, POD_CIDR, POD_GATEWAY, SERVICE_CIDR } from '../node-network.ts';

export interface NodePaths {
  dir: string;
  containerdSocket: string;
  cniConfDir: string;
  kubeletDir: string;
}

export function nodePaths(dir: string): NodePaths {
  return {
    dir,
    containerdSocket: join(dir, 'containerd', 'containerd.sock'),
    cniConfDir: join(dir, 'cni', 'net.d'),
    kubeletDir: join(dir, 'kubelet'),
  };
}

export function containerdConfig(p: NodePaths, pauseImage: string): string {
  const c = join(p.dir, 'containerd');
  return `version = 2
root = "${c}/root"
state = "${c}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "${p.containerdSocket}"
[ttrpc]
  address = "${p.containerdSocket}.ttrpc"
[debug]
  address = "${c}/debug.sock"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${c}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  # Root here lacks CAP_SYS_RESOURCE: the kubelet's negative oom_score_adj for sandboxes would make
  # every runc create fail ("can't get final child's PID from pipe"); clamp to containerd's own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "${c}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${p.cniConfDir}"
    max_conf_num = 1
`;
}

/** The pod network: routes to the pod and service ranges only, so a pod can reach nothing else. */
export function cniConfList(p: NodePaths): string {
  return JSON.stringify({
    cniVersion: '0.4.0',
    name: 'enclave',
    plugins: [
      {
        type: 'bridge',
        bridge: BRIDGE,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: POD_CIDR, gateway: POD_GATEWAY }]],
          routes: [{ dst: SERVICE_CIDR }],
          dataDir: join(p.dir, 'cni', 'ipam'),
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2);
}

export function kubeletConfig(p: NodePaths, clientCaFile: string): string {
  return stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // These machines have cgroup v1 (hybrid); kubelet 1.35 refuses it unless told otherwise.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    containerRuntimeEndpoint: `unix://${p.containerdSocket}`,
    imageServiceEndpoint: `unix://${p.containerdSocket}`,
    address: '127.0.0.1',
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    // Only the API server (a client-CA certificate) may use the kubelet's API.
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: clientCaFile } },
    authorization: { mode: 'AlwaysAllow' },
    failSwapOn: false,
    // Pods never query the machine's resolver: cluster DNS only.
    resolvConf: join(p.dir, 'resolv.conf'),
    clusterDNS: [CLUSTER_DNS_IP],
    clusterDomain: CLUSTER_DOMAIN,
    podLogsDir: join(p.dir, 'pod-logs'),
    volumePluginDir: join(p.dir, 'volume-plugins'),
    // A rotated Secret reaches running pods within seconds, not the default minute.
    syncFrequency: '5s',
    serializeImagePulls: false,
    // A shared disk: never garbage-collect our imported images or evict pods over disk pressure.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '1%', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    nodeStatusUpdateFrequency: '2s',
    maxPods: 60,
  });
}

/** Corefile: cluster names only; there is nothing upstream to forward to (pods have no route out). */
export const COREFILE = `.:53 {
    errors
    health :8080
    ready :8181
    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
    loop
}
`;

/** CoreDNS in kube-system as real clusters run it: label k8s-app=kube-dns behind Service kube-dns. */
export function clusterDnsManifests(image: string): string {
  const labels = { 'k8s-app': 'kube-dns' };
  const docs: object[] = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: 'kube-system' } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'system:coredns' },
      rules: [
        { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'system:coredns' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
      subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: 'kube-system' }],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: 'kube-system' }, data: { Corefile: COREFILE } },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'coredns', namespace: 'kube-system', labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'coredns',
            priorityClassName: 'system-cluster-critical',
            terminationGracePeriodSeconds: 1,
            containers: [{
              name: 'coredns',
              image,
              imagePullPolicy: 'Never',
              args: ['-conf', '/etc/coredns/Corefile'],
              ports: [
                { name: 'dns', containerPort: 53, protocol: 'UDP' },
                { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
              ],
              readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 1 },
              // Port 53 as in real clusters (NetworkPolicies name it): root with only NET_BIND_SERVICE.
              securityContext: {
                runAsUser: 0,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
              },
              volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
            }],
            volumes: [{ name: 'config', configMap: { name: 'coredns' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system', labels },
      spec: {
        clusterIP: CLUSTER_DNS_IP,
        selector: labels,
        ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 }, { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 }],
      },
    },
  ];
  return docs.map((d) => stringify(d)).join('---\n');
}
