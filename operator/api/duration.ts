// Go-style durations (`90s`, `1h30m`, `2160h`, `500ms`), the syntax every duration field of the
// CRDs uses (their schemas check the shape; this is the one parser of the value). A value that is
// not a duration is an error naming the field, never a silent 0.
export class DurationError extends Error {
  readonly field: string;
  constructor(field: string, text: string) {
    super(`${field}: invalid duration "${text}": use Go syntax such as 90s, 10m, 2160h`);
    this.name = 'DurationError';
    this.field = field;
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `text` in milliseconds; throws DurationError naming `field` when it is not a Go-style duration. */
export function parseDuration(text: string, field: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;
  let total = 0;
  let at = 0;
  let m: RegExpExecArray | null;
  while (at < text.length && (m = re.exec(text)) !== null) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    at = re.lastIndex;
  }
  if (text.length === 0 || at !== text.length) throw new DurationError(field, text);
  return total;
}
