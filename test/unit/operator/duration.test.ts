// operator/api/duration.ts: the one parser of the CRDs' Go-style durations, used by certificate
// issuance and the broker config alike.
import { describe, expect, it } from 'vitest';
import { DurationError, parseDuration } from '../../../operator/api/duration.ts';

describe('parseDuration', () => {
  it.each([
    ['90s', 90_000],
    ['10m', 600_000],
    ['2160h', 2160 * 3_600_000],
    ['1h30m', 5_400_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['250ms', 250],
    ['1.5h', 5_400_000],
  ])('%s → %d ms', (input, ms) => expect(parseDuration(input, 'spec.timeout')).toBe(ms));

  it.each(['', '10', '5d', 'h', '10m x', ' 5s', '5s ', '-5s', '5S', 'abc'])('rejects %j with an error naming the field and the Go syntax', (input) => {
    expect(() => parseDuration(input, 'spec.jwt.jwksRefresh')).toThrow(DurationError);
    expect(() => parseDuration(input, 'spec.jwt.jwksRefresh')).toThrow(`spec.jwt.jwksRefresh: invalid duration ${JSON.stringify(input)}: use Go syntax such as 90s, 10m, 2160h`);
  });
});
