// Pure: what `npm start` prints for one local broker — its endpoints and ready-to-paste
// mosquitto_sub / mosquitto_pub lines (with the quickstart's example user when it applies).
import type { LocalBroker } from './kubelet.ts';

export function mosquittoLines(b: LocalBroker, quickstart: boolean): string {
  const tenant = b.owner.split('/')[0] ?? b.owner;
  const lines = [`tenant ${b.owner}  (runtime namespace ${b.namespace}, config ${b.configHash})`];
  for (const e of b.endpoints) lines.push(`  ${e.name.padEnd(10)} ${e.protocol}://127.0.0.1:${e.port}   (container port ${e.containerPort})`);
  lines.push(`  admin      http://127.0.0.1:${b.adminPort}/metrics   log ${b.logFile}`);
  const mqtt = b.endpoints.find((e) => e.protocol === 'mqtt');
  if (mqtt) {
    const auth = quickstart ? ' -u sensor -P sensor-secret' : ' -u USER -P PASSWORD';
    lines.push(`  mosquitto_sub -h 127.0.0.1 -p ${mqtt.port}${auth} -t '${tenant}/#' -v`);
    lines.push(`  mosquitto_pub -h 127.0.0.1 -p ${mqtt.port}${auth} -t '${tenant}/hello' -m 'hi from ${tenant}'`);
  }
  return `${lines.join('\n')}\n`;
}
