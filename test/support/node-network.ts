// Owns the address plan of the test node, shared by the control plane (what it advertises and
// signs) and the node (bridge, CNI, DNS). Chosen to overlap nothing on these machines (the host
// network is 192.0.2.0/24): pods live on 10.244.0.0/24 behind the bridge `enclave0`, whose gateway
// is the host side; Services on 10.96.0.0/16. Pods get routes to those two ranges only, no default
// route, so nothing a pod sends can leave the machine.
export const BRIDGE = 'enclave0';
export const POD_CIDR = '10.244.0.0/24';
/** The host's address on the bridge: pods reach the API server (and nothing else of the host's) here. */
export const POD_GATEWAY = '10.244.0.1';
export const SERVICE_CIDR = '10.96.0.0/16';
/** The first address of the service range: the `kubernetes` Service. */
export const KUBERNETES_SERVICE_IP = '10.96.0.1';
/** CoreDNS' Service (the kubelet's clusterDNS). */
export const CLUSTER_DNS_IP = '10.96.0.10';
export const CLUSTER_DOMAIN = 'cluster.local';
