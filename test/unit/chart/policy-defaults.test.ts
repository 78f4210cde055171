// The operator's built-in policy (used outside the chart, e.g. `npm start`) is the chart's default
// policy, and what the chart hands the operator (ENCLAVE_POLICY) parses to it: one policy, never two.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, policyFromJson } from '../../../operator/policy/platform.ts';

describe('default platform policy', () => {
  it('equals the chart default (values.yaml policy)', () => {
    const values = parse(readFileSync('charts/enclave/values.yaml', 'utf8')) as { policy: Record<string, unknown> & { scheduling: Record<string, unknown> } };
    const { admission, ...policy } = values.policy;
    expect(admission).toEqual({ enabled: true });
    // Empty scheduling maps/lists mean "none", like the operator's `{}`.
    expect(Object.values(policy.scheduling).every((v) => Object.keys(v as object).length === 0)).toBe(true);
    expect(policyFromJson(JSON.stringify({ ...policy, scheduling: {} }))).toEqual(DEFAULT_POLICY);
  });
});
