// Owns what the real-node e2e tests run as pods: short Node.js programs in the broker image (the
// one image every node already holds; it has node and mqtt-packet), under the restricted security
// context. A client pod is how a tenant's application reaches its broker — through the Service's
// ClusterIP or DNS name, from its own namespace — so NetworkPolicies apply to it as they would in
// production (kube-router always lets the node itself through, so the host is no fair test).
import { kubectl, world } from '../../support/world.ts';

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

/** A pod that only waits (PID 1 ends on SIGTERM): what probes are exec'd in. */
const IDLE = `process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1 << 30);`;

/**
 * A long-lived client pod in `namespace`, Ready before it is used: NetworkPolicy enforcers learn a
 * new pod's address a moment after it starts, so a probe from a pod created just for it would test
 * that lag instead of the policy.
 */
export async function startClientPod(namespace: string, name = 'client'): Promise<string> {
  const pod = {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels: { 'e2e.enclave.dev/client': 'true' } },
    spec: {
      terminationGracePeriodSeconds: 1,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      containers: [{
        name: 'client', image: world().node.images.broker, imagePullPolicy: 'Never', command: ['node', '-e', IDLE],
        securityContext: restricted,
        resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
      }],
    },
  };
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod) });
  await kubectl(['wait', '--for=condition=Ready', `pod/${name}`, '-n', namespace, '--timeout=90s'], { timeoutMs: 100_000 });
  return name;
}

/** Runs one of SCRIPTS in a running pod (kubectl exec) and returns its single output line. */
export async function execIn(namespace: string, pod: string, script: keyof typeof SCRIPTS, env: Record<string, string>, container?: string): Promise<string> {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const r = await kubectl(['exec', '-n', namespace, pod, ...(container ? ['-c', container] : []), '--', 'env', ...envArgs, 'node', '-e', SCRIPTS[script]], { allowFailure: true });
  if (r.code !== 0) throw new Error(`kubectl exec into ${namespace}/${pod} failed: ${r.stderr}`);
  return r.stdout.trim().split('\n').pop() ?? '';
}

/** The same in the broker pod of a runtime namespace: what the broker itself can reach. */
export async function execInBroker(runtimeNs: string, script: keyof typeof SCRIPTS, env: Record<string, string>): Promise<string> {
  // A ready pod that is not on its way out (a replaced pod stays Running while it drains).
  const r = await kubectl(['get', 'pods', '-n', runtimeNs, '-l', 'app.kubernetes.io/name=enclave-broker', '-o', 'json']);
  const pods = (JSON.parse(r.stdout) as { items: { metadata: { name: string; deletionTimestamp?: string }; status?: { conditions?: { type: string; status: string }[] } }[] }).items;
  const pod = pods.find((p) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  if (!pod) throw new Error(`no ready broker pod in ${runtimeNs}`);
  return execIn(runtimeNs, pod.metadata.name, script, env, 'broker');
}
