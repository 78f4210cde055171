// The operator's built-in default broker image (used when run outside the chart, e.g. `npm start`
// against a cluster) is the image the chart deploys by default: one name, never two.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BROKER_IMAGE, operatorConfigFromEnv } from '../../../operator/config.ts';

describe('default broker image', () => {
  it('equals the chart default (values.yaml broker.image, tag = appVersion)', () => {
    const values = parse(readFileSync('charts/enclave/values.yaml', 'utf8')) as { broker: { image: { repository: string; tag: string } } };
    const chart = parse(readFileSync('charts/enclave/Chart.yaml', 'utf8')) as { appVersion: string };
    expect(DEFAULT_BROKER_IMAGE).toBe(`${values.broker.image.repository}:${values.broker.image.tag || chart.appVersion}`);
    expect(operatorConfigFromEnv({}).defaultImage).toBe(DEFAULT_BROKER_IMAGE);
    expect(operatorConfigFromEnv({ ENCLAVE_BROKER_IMAGE: 'registry.local/broker:1' }).defaultImage).toBe('registry.local/broker:1');
  });
});
