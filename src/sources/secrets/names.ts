/**
 * Key Vault names for Kubernetes Secrets. Key Vault allows only `0-9 a-z A-Z -`, 1–127 characters, and
 * compares names case-insensitively; Kubernetes names have `.`, case (keys also `_`), and are up to 253
 * characters. Three forms, each prefixed so they can never collide with one another:
 *
 * - `lb-s-NAMESPACE--NAME` (readable): when the name is lowercase `a-z 0-9 -`, neither part holds
 *   `--`, and the name is not `p<digits>` (it would read as a part suffix). DNS names never start or end with `-`, so the first `--` splits the two parts exactly.
 * - `lb-b-BASE32`: base32 (RFC 4648 alphabet, lowercased, no padding) of the exact `namespace/name`;
 *   reversible, case-insensitive-safe, for names with dots, capitals or `--`.
 * - `lb-h-HASH`: when base32 would not fit in 127 characters, a SHA-256 of `namespace/name` (base32,
 *   first 52 characters = 260 bits). Not reversible from the name alone: the tags and the manifest carry
 *   the real namespace and name, which is why sync reads the manifest and never guesses from names.
 *
 * A value larger than one Key Vault secret is split: part 1 uses the base name, part N > 1 appends
 * `--pN`. No base name ends in `--pN` (readable names hold no `--`; base32 and hashes hold no `-`), so
 * parts never collide with another Secret's base name. Base names are kept ≤ 122 characters so `--p99`
 * still fits.
 */
import { createHash } from 'node:crypto';

export const VAULT_NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;
const MAX_BASE = 122;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let acc = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(acc << (5 - bits)) & 31];
  return out;
}

export function unbase32(text: string): Buffer | undefined {
  const out: number[] = [];
  let bits = 0;
  let acc = 0;
  for (const ch of text.toLowerCase()) {
    const v = BASE32.indexOf(ch);
    if (v < 0) return undefined;
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((acc >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

const READABLE_PART = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** The base Key Vault name of the Kubernetes Secret `namespace/name`. */
export function vaultName(namespace: string, name: string): string {
  // A name like `p2` would give `lb-s-NS--p2`, which reads as part 2 of something: not readable then.
  if (READABLE_PART.test(namespace) && READABLE_PART.test(name) && !/^p\d+$/.test(name)) {
    const readable = `lb-s-${namespace}--${name}`;
    if (readable.length <= MAX_BASE) return readable;
  }
  const exact = `lb-b-${base32(Buffer.from(`${namespace}/${name}`, 'utf8'))}`;
  if (exact.length <= MAX_BASE) return exact;
  return `lb-h-${base32(createHash('sha256').update(`${namespace}/${name}`).digest()).slice(0, 52)}`;
}

/** Inverse of vaultName for the reversible forms; undefined for hashed names (use the tags). */
export function parseVaultName(vault: string): { namespace: string; name: string } | undefined {
  const lower = vault.toLowerCase();
  if (lower.startsWith('lb-s-')) {
    const rest = lower.slice(5);
    const cut = rest.indexOf('--');
    if (cut < 0) return undefined;
    return { namespace: rest.slice(0, cut), name: rest.slice(cut + 2) };
  }
  if (lower.startsWith('lb-b-')) {
    const bytes = unbase32(lower.slice(5));
    const text = bytes?.toString('utf8');
    const cut = text?.indexOf('/') ?? -1;
    if (!text || cut < 0) return undefined;
    return { namespace: text.slice(0, cut), name: text.slice(cut + 1) };
  }
  return undefined;
}

/** The Key Vault name of part `index` (1-based) of a value stored under `base`. */
export function partName(base: string, index: number): string {
  return index === 1 ? base : `${base}--p${index}`;
}

/** The manifest of one namespace (namespaces are DNS labels: always valid Key Vault characters). */
export function manifestName(namespace: string): string {
  return `lifeboat-manifest-${namespace}`;
}
