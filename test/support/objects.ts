// Owns reading objects from the world's API server as tests assert on them: `kubectl get -o json`,
// typed by the caller, NotFound as `undefined` and every other failure as an error carrying
// kubectl's message. The operator and e2e harnesses build on these (their object types differ).
import { kubectl } from './world.ts';

/** `kubectl get kind name [-n namespace]` as JSON; undefined when NotFound. */
export async function getObject<T>(kind: string, name: string, namespace?: string): Promise<T | undefined> {
  const r = await kubectl(['get', kind, name, ...(namespace ? ['-n', namespace] : []), '-o', 'json'], { allowFailure: true });
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get ${kind} ${name}${namespace ? ` -n ${namespace}` : ''}: ${r.stderr.trim()}`);
  }
  return JSON.parse(r.stdout) as T;
}

/** The items of `kubectl get kind` in `namespace` (every namespace when undefined), optionally by label selector. */
export async function listObjects<T>(kind: string, namespace?: string, selector?: string): Promise<T[]> {
  const r = await kubectl(['get', kind, ...(namespace ? ['-n', namespace] : ['-A']), ...(selector ? ['-l', selector] : []), '-o', 'json']);
  return (JSON.parse(r.stdout) as { items: T[] }).items;
}
