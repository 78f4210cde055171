// Proof that the test world is real: each case depends on behaviour only a real kube-apiserver,
// kube-controller-manager or database server has (CEL evaluation, garbage collection, namespace
// finalization, PodSecurity admission, server-side apply bookkeeping, RBAC on client certs, SQL and
// Redis round trips). A stub or fake would fail them.
import { describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import {
  ApiException,
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  RbacAuthorizationV1Api,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { Redis } from 'ioredis';
import { readFileSync } from 'node:fs';
import { eventually } from '../support/wait.ts';
import { adminKubeConfig, asUser, helm, kubectl, world } from '../support/world.ts';

const core = () => adminKubeConfig().makeApiClient(CoreV1Api);

/** The human message of a rejected API call (the Status object kube-apiserver returns). */
function statusMessage(err: unknown): string {
  expect(err).toBeInstanceOf(ApiException);
  const body = (err as ApiException<unknown>).body;
  const status = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: string };
  return status.message ?? '';
}

function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

async function gone(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

async function createNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
  await core().createNamespace({ body: { metadata: { name, labels } } });
  // The serviceaccount controller must act before pods can be admitted (ServiceAccount admission).
  await eventually(`default ServiceAccount in ${name}`, async () =>
    !(await gone(() => core().readNamespacedServiceAccount({ name: 'default', namespace: name }))),
  );
}

const crd = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: gadgets.proof.enclave.test }
spec:
  group: proof.enclave.test
  scope: Namespaced
  names: { plural: gadgets, singular: gadget, kind: Gadget }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                min: { type: integer }
                max: { type: integer }
              x-kubernetes-validations:
                - rule: self.min <= self.max
                  message: min must not exceed max
`;

describe('Kubernetes control plane', () => {
  it('rejects an object breaking a CRD CEL rule with the rule message (kubectl apply)', async () => {
    await kubectl(['apply', '-f', '-'], { input: crd });
    await kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/gadgets.proof.enclave.test']);
    const gadget = (min: number, max: number) =>
      `apiVersion: proof.enclave.test/v1\nkind: Gadget\nmetadata: { name: g-${min}-${max}, namespace: default }\nspec: { min: ${min}, max: ${max} }\n`;

    const bad = await kubectl(['apply', '-f', '-'], { input: gadget(5, 1), allowFailure: true });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('min must not exceed max');

    const good = await kubectl(['apply', '-f', '-'], { input: gadget(1, 5) });
    expect(good.stdout).toContain('gadget.proof.enclave.test/g-1-5 created');
    const listed = await kubectl(['get', 'gadgets', '-n', 'default', '-o', 'name']);
    expect(listed.stdout.trim()).toBe('gadget.proof.enclave.test/g-1-5');
  });

  it('garbage-collects an ownerReference child after its owner is deleted', async () => {
    const ns = 'default';
    const owner = await core().createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'gc-owner' }, data: { a: '1' } } });
    const child: V1ConfigMap = {
      metadata: {
        name: 'gc-child',
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'gc-owner', uid: owner.metadata!.uid! }],
      },
      data: { b: '2' },
    };
    await core().createNamespacedConfigMap({ namespace: ns, body: child });
    await core().deleteNamespacedConfigMap({ name: 'gc-owner', namespace: ns });
    await eventually('gc-child to be garbage-collected', () =>
      gone(() => core().readNamespacedConfigMap({ name: 'gc-child', namespace: ns })),
    );
  });

  it('finalizes a deleted namespace together with the objects in it', async () => {
    const ns = 'proof-doomed';
    await createNamespace(ns);
    await core().createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'inside' }, data: { x: 'y' } } });
    await core().createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'inside' }, stringData: { k: 'v' } } });
    await core().deleteNamespace({ name: ns });
    await eventually(`namespace ${ns} to disappear`, () => gone(() => core().readNamespace({ name: ns })));
    // Recreated empty: nothing of the old content survived in storage.
    await core().createNamespace({ body: { metadata: { name: ns } } });
    const left = await core().listNamespacedConfigMap({ namespace: ns });
    expect(left.items.map((c) => c.metadata?.name)).not.toContain('inside');
    expect(await gone(() => core().readNamespacedSecret({ name: 'inside', namespace: ns }))).toBe(true);
  });

  it('enforces PodSecurity "restricted" in a namespace labeled for it', async () => {
    const ns = 'proof-restricted';
    await createNamespace(ns, { 'pod-security.kubernetes.io/enforce': 'restricted' });
    const pod = (name: string, securityContext: object) => ({
      metadata: { name },
      spec: { containers: [{ name: 'c', image: 'registry.invalid/app:1', securityContext }] },
    });
    let rejection: unknown;
    try {
      await core().createNamespacedPod({ namespace: ns, body: pod('privileged', { privileged: true }) });
    } catch (err) {
      rejection = err;
    }
    expect(rejection).toBeInstanceOf(ApiException);
    expect((rejection as ApiException<unknown>).code).toBe(403);
    expect(statusMessage(rejection)).toContain('violates PodSecurity "restricted:latest": privileged');

    const ok = await core().createNamespacedPod({
      namespace: ns,
      body: pod('compliant', {
        allowPrivilegeEscalation: false,
        runAsNonRoot: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      }),
    });
    expect(ok.metadata?.uid).toBeTruthy();
  });

  it('treats a repeated server-side apply by the same field manager as a no-op', async () => {
    const objects = KubernetesObjectApi.makeApiClient(adminKubeConfig());
    const desired: V1ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ssa-proof', namespace: 'default' },
      data: { key: 'value' },
    };
    const apply = () => objects.patch(desired, undefined, undefined, 'enclave-proof', true, PatchStrategy.ServerSideApply);
    const first = await apply();
    const second = await apply();
    expect(first.metadata?.resourceVersion).toBeTruthy();
    expect(second.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion);
    expect(second.metadata?.managedFields?.map((f) => f.manager)).toEqual(['enclave-proof']);
  });

  it('authenticates client-cert users and authorizes them by RBAC only', async () => {
    const tenant = await asUser('alice', ['team-a']);
    const asAlice = tenant.kubeConfig.makeApiClient(CoreV1Api);
    const denied = await asAlice.listNamespacedSecret({ namespace: 'default' }).catch((err: unknown) => err);
    expect(denied).toBeInstanceOf(ApiException);
    expect((denied as ApiException<unknown>).code).toBe(403);
    expect(statusMessage(denied)).toContain('User "alice" cannot list resource "secrets"');

    const rbac = adminKubeConfig().makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRoleBinding({
      namespace: 'default',
      body: {
        metadata: { name: 'team-a-view' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'team-a' }],
      },
    });
    await eventually('RoleBinding for group team-a to take effect', async () => {
      try {
        await asAlice.listNamespacedSecret({ namespace: 'default' });
        return true;
      } catch (err) {
        if (err instanceof ApiException && err.code === 403) return false;
        throw err;
      }
    }, 10_000);
    const can = await kubectl(['auth', 'can-i', 'delete', 'secrets', '-n', 'kube-system'], { kubeconfig: tenant.kubeconfigPath, allowFailure: true });
    expect(can.stdout.trim()).toBe('no');
  });

  it('serves the pinned Kubernetes version to the built kubectl and helm', async () => {
    const pins: Record<string, string | undefined> = Object.fromEntries(
      [...readFileSync('scripts/versions.env', 'utf8').matchAll(/^([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']),
    );
    const version = JSON.parse((await kubectl(['version', '-o', 'json'])).stdout) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };
    expect(version.serverVersion.gitVersion).toBe(pins.KUBE_VERSION);
    expect(version.clientVersion.gitVersion).toBe(pins.KUBE_VERSION);
    expect((await helm(['version', '--short'])).stdout.trim()).toBe(pins.HELM_VERSION);
    // helm reaches the cluster with the same admin kubeconfig (no releases yet in this namespace).
    expect((await helm(['list', '-n', 'default', '-q'])).stdout.trim()).toBe('');
  });
});

describe('databases', () => {
  it('round-trips a row through PostgreSQL', async () => {
    const { postgres } = world();
    const client = new pg.Client({ host: postgres.host, port: postgres.port, user: postgres.user, password: postgres.password, database: postgres.database });
    await client.connect();
    try {
      await client.query('CREATE TABLE proof_pg (id serial PRIMARY KEY, note text NOT NULL)');
      await client.query('INSERT INTO proof_pg (note) VALUES ($1)', ['hello from pg']);
      const { rows } = await client.query<{ note: string; version: string }>('SELECT note, version() AS version FROM proof_pg');
      expect(rows).toHaveLength(1);
      expect(rows[0]?.note).toBe('hello from pg');
      expect(rows[0]?.version).toMatch(/^PostgreSQL \d+/);
    } finally {
      await client.end();
    }
  });

  it('round-trips a row through MariaDB', async () => {
    const { mariadb } = world();
    const conn = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password, database: mariadb.database });
    try {
      await conn.query('CREATE TABLE proof_my (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64) NOT NULL)');
      await conn.execute('INSERT INTO proof_my (note) VALUES (?)', ['hello from mariadb']);
      const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT note, VERSION() AS version FROM proof_my');
      expect(rows).toHaveLength(1);
      expect(rows[0]?.note).toBe('hello from mariadb');
      expect(String(rows[0]?.version)).toContain('MariaDB');
    } finally {
      await conn.end();
    }
  });

  it('round-trips a key through Redis and requires its password', async () => {
    const { redis } = world();
    const client = new Redis({ host: redis.host, port: redis.port, password: redis.password, lazyConnect: true });
    await client.connect();
    try {
      await client.set('proof:key', 'hello from redis', 'EX', 60);
      expect(await client.get('proof:key')).toBe('hello from redis');
    } finally {
      client.disconnect();
    }
    // Without the password the server refuses (raw RESP on the wire, no client library in between).
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(redis.port, redis.host, () => socket.write('GET proof:key\r\n'));
      socket.once('data', (data) => {
        resolve(data.toString());
        socket.destroy();
      });
      socket.once('error', reject);
    });
    expect(reply).toMatch(/^-NOAUTH/);
  });
});
