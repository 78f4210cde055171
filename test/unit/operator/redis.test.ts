// The managed Redis builder: objects only when spec.state asks for a managed Redis, a restricted pod
// that reaches nothing and is reached by the broker pods only, the generated password in its own
// Secret only, a claim only with persistence, and a key prefix that follows the UID, not the name.
import { describe, expect, it } from 'vitest';
import { managedRedisObjects, stateKeyPrefix } from '../../../operator/resources/redis.ts';
import { ctx, md } from './fixtures.ts';

const managed = (persistence?: { size: string; storageClassName?: string }) => md({ replicas: 2, state: { backend: 'redis', redis: { managed: persistence ? { persistence } : {} } } });
const kinds = (objs: { kind?: string; metadata?: { name?: string } }[]) => objs.map((o) => `${o.kind}/${o.metadata?.name}`);

describe('managed Redis', () => {
  it('builds nothing for memory, no state, or an external Redis', () => {
    expect(managedRedisObjects(ctx(md()), 'pw', 'redis:7')).toEqual([]);
    expect(managedRedisObjects(ctx(md({ state: { backend: 'memory' } })), 'pw', 'redis:7')).toEqual([]);
    expect(managedRedisObjects(ctx(md({ replicas: 2, state: { backend: 'redis', redis: { external: { secretRef: { name: 'r' } } } } })), 'pw', 'redis:7')).toEqual([]);
  });

  it('an in-memory Redis: Secret, Service, Deployment, and the two policies; no claim', () => {
    const objs = managedRedisObjects(ctx(managed()), 'generated-pw', 'redis:7');
    expect(kinds(objs)).toEqual(['Secret/redis', 'Service/redis', 'Deployment/redis', 'NetworkPolicy/allow-redis-from-brokers', 'NetworkPolicy/allow-brokers-to-redis']);
    const secret = objs[0] as { stringData: Record<string, string> };
    expect(secret.stringData['password']).toBe('generated-pw');
    expect(secret.stringData['redis.conf']).toContain('requirepass generated-pw');
    expect(secret.stringData['redis.conf']).toContain('appendonly no');
    const dep = JSON.stringify(objs[2]);
    // The password is in the Secret only, never in the pod spec.
    expect(dep).not.toContain('generated-pw');
    const pod = (objs[2] as { spec: { template: { spec: { containers: { securityContext: object }[]; volumes: { name: string; emptyDir?: object }[] } } } }).spec.template.spec;
    expect(pod.containers[0]!.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(pod.volumes.find((v) => v.name === 'data')?.emptyDir).toBeDefined();
  });

  it('with persistence: a claim of the asked size and class, the append-only file on it', () => {
    const objs = managedRedisObjects(ctx(managed({ size: '2Gi', storageClassName: 'fast' })), 'pw', 'redis:7');
    expect(kinds(objs)).toContain('PersistentVolumeClaim/redis-data');
    const pvc = objs.find((o) => o.kind === 'PersistentVolumeClaim') as { spec: { resources: { requests: { storage: string } }; storageClassName: string } };
    expect(pvc.spec).toMatchObject({ resources: { requests: { storage: '2Gi' } }, storageClassName: 'fast' });
    expect((objs[0] as { stringData: Record<string, string> }).stringData['redis.conf']).toContain('appendonly yes');
  });

  it('the key prefix follows the UID: the same name re-created never shares keys', () => {
    const a = md();
    const b = { ...a, metadata: { ...a.metadata, uid: 'uid-2' } };
    expect(stateKeyPrefix(a)).toBe('enclave:uid-1:');
    expect(stateKeyPrefix(b)).not.toBe(stateKeyPrefix(a));
  });
});
