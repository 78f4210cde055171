// IPv4/IPv6 CIDR overlap (pure), for the platform's denied egress ranges: two ranges overlap when
// one contains the other's network address.
import { isIPv4, isIPv6 } from 'node:net';

interface Range {
  family: 4 | 6;
  network: bigint;
  bits: number;
}

function ipToBigInt(ip: string): { family: 4 | 6; value: bigint } | undefined {
  if (isIPv4(ip)) return { family: 4, value: ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) };
  if (!isIPv6(ip)) return undefined;
  let [head, tail] = ip.includes('::') ? ip.split('::') as [string, string] : [ip, undefined];
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(tail ?? head)?.[1];
  if (v4) {
    const n = ipToBigInt(v4)!.value;
    const groups = `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
    if (tail !== undefined) tail = tail.replace(v4, groups);
    else head = head.replace(v4, groups);
  }
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return { family: 6, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n) };
}

export function parseCidr(text: string): Range | undefined {
  const [ip, prefix] = text.split('/');
  const addr = ipToBigInt(ip ?? '');
  if (!addr || prefix === undefined || !/^\d+$/.test(prefix)) return undefined;
  const width = addr.family === 4 ? 32 : 128;
  const bits = Number(prefix);
  if (bits > width) return undefined;
  const mask = bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
  return { family: addr.family, network: addr.value & mask, bits };
}

function contains(outer: Range, inner: Range): boolean {
  if (outer.family !== inner.family || outer.bits > inner.bits) return false;
  const width = outer.family === 4 ? 32 : 128;
  const shift = BigInt(width - outer.bits);
  return outer.bits === 0 || (inner.network >> shift) === (outer.network >> shift);
}

/** Whether two CIDRs share any address; unparsable input never overlaps (the CRD refuses it first). */
export function cidrsOverlap(a: string, b: string): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  return x !== undefined && y !== undefined && (contains(x, y) || contains(y, x));
}
