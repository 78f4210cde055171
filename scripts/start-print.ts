// Pure: what `npm start` prints for one tenant's broker on the local node — its runtime namespace,
// the Service's in-cluster name and ClusterIP (which the host reaches through kube-proxy like any
// node does), and ready-to-paste mosquitto_sub / mosquitto_pub lines (with the quickstart's example
// user when it applies).
export interface TenantBroker {
  /** Owner MqttDeployment `namespace/name`. */
  owner: string;
  runtimeNamespace: string;
  clusterIP: string;
  ports: { name: string; port: number }[];
  pods: string[];
}

export function mosquittoLines(b: TenantBroker, quickstart: boolean): string {
  const tenant = b.owner.split('/')[0] ?? b.owner;
  const lines = [`tenant ${b.owner}  (runtime namespace ${b.runtimeNamespace}, pods ${b.pods.join(', ')})`];
  for (const p of b.ports) lines.push(`  ${p.name.padEnd(10)} ${b.clusterIP}:${p.port}   (broker.${b.runtimeNamespace}.svc:${p.port} inside the cluster)`);
  const mqtt = b.ports.find((p) => p.name === 'mqtt') ?? b.ports[0];
  if (mqtt) {
    const auth = quickstart ? ' -u sensor -P sensor-secret' : ' -u USER -P PASSWORD';
    lines.push(`  mosquitto_sub -h ${b.clusterIP} -p ${mqtt.port}${auth} -t '${tenant}/#' -v`);
    lines.push(`  mosquitto_pub -h ${b.clusterIP} -p ${mqtt.port}${auth} -t '${tenant}/hello' -m 'hi from ${tenant}'`);
  }
  return `${lines.join('\n')}\n`;
}
