// Owns what the real-node e2e tests run as pods: short Node.js programs in the broker image (the
// one image every node already holds; it has node and mqtt-packet), under the restricted security
// context. A client pod is how a tenant's application reaches its broker — through the Service's
// ClusterIP or DNS name, from its own namespace — so NetworkPolicies apply to it as they would in
// production (kube-router always lets the node itself through, so the host is no fair test).
import { kubectl, world } from '../../support/world.ts';
import { eventually } from './harness.ts';

/** TCP connect with a deadline: prints CONNECTED, REFUSED, TIMEOUT or ERROR <code>. */
const TCP_PROBE = `
const net = require('net');
const s = net.connect({ host: process.env.HOST, port: Number(process.env.PORT) });
const done = (w) => { console.log(w); process.exit(0); };
s.setTimeout(Number(process.env.TIMEOUT_MS || 3000), () => done('TIMEOUT'));
s.on('connect', () => done('CONNECTED'));
s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'REFUSED' : 'ERROR ' + e.code));
`;

/** DNS lookup: prints the address or NXDOMAIN/ERROR. */
const DNS_LOOKUP = `
require('dns').lookup(process.env.NAME, { family: 4 }, (err, addr) => { console.log(err ? 'ERROR ' + err.code : addr); });
`;

/**
 * An MQTT 3.1.1 client on raw mqtt-packet: CONNECT (username/password), SUBSCRIBE topic QoS 1,
 * PUBLISH to it QoS 1, wait for the message to come back. Prints one line: GOT <payload>,
 * CONNACK <code>, SUBACK-DENIED, TIMEOUT or ERROR <code>.
 */
const MQTT_ROUNDTRIP = `
const mp = require('/app/node_modules/mqtt-packet');
const net = require('net');
const out = (w) => { console.log(w); process.exit(0); };
const s = net.connect({ host: process.env.HOST, port: Number(process.env.PORT) });
const send = (p) => s.write(mp.generate(p));
const parser = mp.parser();
setTimeout(() => out('TIMEOUT'), 10000);
s.on('error', (e) => out('ERROR ' + e.code));
s.on('connect', () => send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: process.env.CLIENT_ID, username: process.env.USERNAME, password: Buffer.from(process.env.PASSWORD || '') }));
s.on('data', (b) => parser.parse(b));
parser.on('packet', (p) => {
  if (p.cmd === 'connack') {
    if (p.returnCode !== 0) out('CONNACK ' + p.returnCode);
    send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: process.env.TOPIC, qos: 1 }] });
  } else if (p.cmd === 'suback') {
    if (p.granted[0] >= 128) out('SUBACK-DENIED');
    send({ cmd: 'publish', messageId: 2, qos: 1, topic: process.env.TOPIC, payload: Buffer.from(process.env.PAYLOAD) });
  } else if (p.cmd === 'publish') {
    if (p.qos > 0) send({ cmd: 'puback', messageId: p.messageId });
    out('GOT ' + p.payload.toString());
  }
});
`;

/** An HTTP auth service (EMQX HTTP-auth protocol): allows one user, denies everyone else. */
export const HTTP_AUTH_SERVER = `
require('http').createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; if (body.length > 65536) req.destroy(); });
  req.on('end', () => {
    let q = {};
    try { q = JSON.parse(body); } catch {}
    const ok = q.username === process.env.AUTH_USER && q.password === process.env.AUTH_PASSWORD;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(ok ? { result: 'allow', acl: [{ permission: 'allow', action: 'all', topic: '#' }] } : { result: 'deny' }));
  });
}).listen(8080);
process.on('SIGTERM', () => process.exit(0));
`;

export const SCRIPTS = { tcp: TCP_PROBE, dns: DNS_LOOKUP, mqtt: MQTT_ROUNDTRIP } as const;

/** The restricted-profile container settings every pod of these tests uses. */
export const restricted = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  runAsUser: 65532,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

let seq = 0;

/**
 * Runs `script` (one of SCRIPTS) once in a pod of `namespace` and returns its single output line.
 * The pod is deleted afterwards.
 */
export async function runInPod(namespace: string, script: keyof typeof SCRIPTS, env: Record<string, string>, timeoutMs = 60_000): Promise<string> {
  const name = `probe-${script}-${process.pid}-${++seq}`;
  const pod = {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels: { 'e2e.enclave.dev/probe': script } },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      containers: [{
        name: 'probe', image: world().node.images.broker, imagePullPolicy: 'Never',
        command: ['node', '-e', SCRIPTS[script]],
        env: Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
        securityContext: restricted,
        resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
      }],
    },
  };
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod) });
  try {
    await eventually(`pod ${namespace}/${name} finished`, async () => {
      const r = await kubectl(['get', 'pod', name, '-n', namespace, '-o', 'jsonpath={.status.phase}']);
      return r.stdout === 'Succeeded' || r.stdout === 'Failed';
    }, timeoutMs);
    const logs = await kubectl(['logs', name, '-n', namespace]);
    return logs.stdout.trim().split('\n').pop() ?? '';
  } finally {
    await kubectl(['delete', 'pod', name, '-n', namespace, '--wait=false', '--ignore-not-found']);
  }
}

/** `kubectl exec` into the broker pod of a runtime namespace: what the broker itself can reach. */
export async function execInBroker(runtimeNs: string, script: keyof typeof SCRIPTS, env: Record<string, string>): Promise<string> {
  const pods = await kubectl(['get', 'pods', '-n', runtimeNs, '-l', 'app.kubernetes.io/name=enclave-broker', '-o', 'jsonpath={.items[0].metadata.name}']);
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const r = await kubectl(['exec', '-n', runtimeNs, pods.stdout, '-c', 'broker', '--', 'env', ...envArgs, 'node', '-e', SCRIPTS[script]], { allowFailure: true });
  if (r.code !== 0) throw new Error(`kubectl exec into ${runtimeNs}/${pods.stdout} failed: ${r.stderr}`);
  return r.stdout.trim().split('\n').pop() ?? '';
}
