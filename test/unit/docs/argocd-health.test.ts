// The Argo CD health check printed in docs/gitops.md, run as written (Lua, in wasmoon's real Lua
// VM) over a table of statuses: not yet observed → Progressing, Ready at this generation →
// Healthy, stale Ready → Progressing, Degraded → Degraded.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LuaFactory, type LuaEngine } from 'wasmoon';
import { repoRoot } from '../../support/paths.ts';

/** The Lua body of the `resource.customizations.health.mqtt.enclave.dev_*` key, dedented. */
export function extractHealthLua(markdown: string): string {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.includes('resource.customizations.health.mqtt.enclave.dev_*: |'));
  if (start < 0) throw new Error('docs/gitops.md has no Argo CD health check block');
  const body: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('```')) break;
    body.push(line.replace(/^ {4}/, ''));
  }
  return body.join('\n');
}

interface Condition { type: string; status: string; reason?: string; message?: string; observedGeneration?: number }
const obj = (generation: number, status?: { observedGeneration?: number; conditions?: Condition[] }) => ({
  metadata: { generation, name: 'prod', namespace: 'team-a' },
  ...(status === undefined ? {} : { status }),
});
const ready = (status: string, observedGeneration: number, reason = status === 'True' ? 'Ready' : 'BackendUnavailable'): Condition => ({
  type: 'Ready', status, reason, message: `msg ${reason}`, observedGeneration,
});

const cases: { name: string; obj: ReturnType<typeof obj>; status: string; message?: RegExp }[] = [
  { name: 'no status yet', obj: obj(1), status: 'Progressing', message: /report status/ },
  { name: 'status of an older generation', obj: obj(3, { observedGeneration: 2, conditions: [ready('True', 2)] }), status: 'Progressing', message: /generation 3/ },
  { name: 'ready at this generation', obj: obj(2, { observedGeneration: 2, conditions: [ready('True', 2)] }), status: 'Healthy' },
  { name: 'ready condition lags the status', obj: obj(2, { observedGeneration: 2, conditions: [ready('True', 1)] }), status: 'Progressing', message: /Ready condition/ },
  {
    name: 'not ready, progressing',
    obj: obj(1, { observedGeneration: 1, conditions: [ready('False', 1, 'ReplicasNotReady'), { type: 'Progressing', status: 'True', reason: 'Rollout', observedGeneration: 1 }] }),
    status: 'Progressing',
    message: /ReplicasNotReady/,
  },
  {
    name: 'not ready, progressing condition from an older generation',
    obj: obj(2, { observedGeneration: 2, conditions: [ready('False', 2, 'SecretNotFound'), { type: 'Progressing', status: 'True', reason: 'Rollout', observedGeneration: 1 }] }),
    status: 'Degraded',
  },
  { name: 'not ready, failed', obj: obj(1, { observedGeneration: 1, conditions: [ready('False', 1, 'SecretNotFound')] }), status: 'Degraded', message: /SecretNotFound/ },
  {
    name: 'degraded wins over ready',
    obj: obj(4, { observedGeneration: 4, conditions: [ready('True', 4), { type: 'Degraded', status: 'True', reason: 'ApplyFailed', message: 'quota exceeded', observedGeneration: 4 }] }),
    status: 'Degraded',
    message: /quota exceeded/,
  },
  { name: 'conditions without observedGeneration', obj: obj(1, { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'True' }] }), status: 'Healthy' },
];

describe('Argo CD health check in docs/gitops.md', () => {
  let lua: LuaEngine;
  let script: string;
  beforeAll(async () => {
    script = extractHealthLua(await readFile(join(repoRoot, 'docs', 'gitops.md'), 'utf8'));
    lua = await new LuaFactory().createEngine();
  });
  afterAll(() => lua.global.close());

  for (const c of cases) {
    it(c.name, async () => {
      lua.global.set('obj', c.obj);
      const hs = (await lua.doString(script)) as { status: string; message?: string };
      expect(hs.status).toBe(c.status);
      if (c.message) expect(hs.message).toMatch(c.message);
    });
  }
});
