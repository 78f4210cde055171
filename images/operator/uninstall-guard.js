/* global console, process */
// The Helm pre-delete hook's program (charts/enclave/templates/uninstall-guard.yaml runs it from
// the operator image): exit 0 when no MqttDeployment is left in the cluster, else exit 1 naming
// them. Uninstalling the operator while CRs carry its purge finalizer would leave those CRs, and
// the namespaces that hold them, stuck in Terminating. Credentials: in-cluster ServiceAccount, or
// $KUBECONFIG when run by hand (`node images/operator/uninstall-guard.js`).
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';

const group = 'mqtt.enclave.dev';
const version = 'v1alpha1';
const plural = 'mqttdeployments';

/** @param {unknown} err */
function statusCode(err) {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number') return err.code;
  return undefined;
}

async function main() {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const api = kc.makeApiClient(CustomObjectsApi);
  /** @type {{ items: { metadata: { namespace: string; name: string; deletionTimestamp?: string } }[] }} */
  let list;
  try {
    list = await api.listClusterCustomObject({ group, version, plural });
  } catch (err) {
    if (statusCode(err) === 404) {
      console.log(`uninstall-guard: the ${plural}.${group} CRD is not installed; nothing to protect`);
      return 0;
    }
    throw err;
  }
  if (list.items.length === 0) {
    console.log('uninstall-guard: no MqttDeployments left; uninstall may proceed');
    return 0;
  }
  const names = list.items.map((d) => {
    const deleting = d.metadata.deletionTimestamp ? ' (deleting)' : '';
    return `  ${d.metadata.namespace}/${d.metadata.name}${deleting}`;
  });
  console.error(
    [
      `uninstall-guard: refusing to uninstall Enclave: ${list.items.length} MqttDeployment(s) still exist:`,
      ...names,
      'The operator must purge their runtime namespaces and remove its finalizer first. Run',
      '  kubectl delete mqttdeployments --all --all-namespaces --wait',
      'then `helm uninstall` again. (`helm uninstall --no-hooks` skips this check and strands the',
      'finalizers until an operator runs again.)',
    ].join('\n'),
  );
  return 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`uninstall-guard: could not list MqttDeployments: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
