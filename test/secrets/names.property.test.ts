/**
 * Property tests of the Key Vault name encoding (src/sources/secrets/names.ts): every valid Kubernetes
 * namespace/name maps to a valid Key Vault name, distinct from every other one even compared
 * case-insensitively (as Key Vault compares), with room for part suffixes, and back where reversible.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  VAULT_NAME_RE,
  manifestName,
  parseVaultName,
  partName,
  vaultName,
} from '../../src/sources/secrets/names.ts';

// DNS-1123 labels and subdomains, from a small alphabet too so that near-collisions (`a-b` vs `a.b`,
// `a--b`) are generated often.
const labelFrom = (chars: string, max: number) =>
  fc
    .array(fc.constantFrom(...chars.split('')), { minLength: 1, maxLength: max })
    .map((a) => a.join(''))
    .filter((s) => /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s));
const namespace = fc.oneof(labelFrom('ab-', 8), labelFrom('abcxyz0189-', 63));
const subdomain = fc
  .array(fc.oneof(labelFrom('ab-', 6), labelFrom('abcdefghijklmnopqrstuvwxyz0123456789-', 63)), {
    minLength: 1,
    maxLength: 6,
  })
  .map((labels) => labels.join('.'))
  .filter((s) => s.length <= 253);

test('every namespace/name maps to a valid Key Vault name, with room for its part suffixes', () => {
  fc.assert(
    fc.property(namespace, subdomain, (ns, name) => {
      const v = vaultName(ns, name);
      assert.match(v, VAULT_NAME_RE);
      assert.match(partName(v, 99), VAULT_NAME_RE);
      assert.doesNotMatch(v, /--p\d+$/, 'a base name must never look like a part of another');
      assert.match(manifestName(ns), VAULT_NAME_RE);
      assert.ok(!manifestName(ns).startsWith('lb-'));
    }),
    // Found by this property once: a name like `p2` read as a part suffix.
    { numRuns: 2000, examples: [['a', 'p2']] },
  );
});

test('reversible names decode to exactly the namespace and name; the rest are hashes', () => {
  fc.assert(
    fc.property(namespace, subdomain, (ns, name) => {
      const v = vaultName(ns, name);
      const back = parseVaultName(v);
      if (v.startsWith('lb-h-')) assert.equal(back, undefined);
      else assert.deepEqual(back, { namespace: ns, name });
      // Key Vault may hand the name back in another case.
      if (back) assert.deepEqual(parseVaultName(v.toUpperCase()), back);
    }),
    { numRuns: 2000 },
  );
});

test('distinct Secrets never share a vault name or a part name, compared case-insensitively', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(namespace, subdomain), {
        minLength: 2,
        maxLength: 40,
        selector: ([a, b]) => `${a}/${b}`,
      }),
      (pairs) => {
        const seen = new Map<string, string>();
        for (const [ns, name] of pairs) {
          const base = vaultName(ns, name);
          for (const i of [1, 2, 3, 10]) {
            const key = partName(base, i).toLowerCase();
            const owner = `${ns}/${name}`;
            assert.ok(!seen.has(key) || seen.get(key) === owner, `${key}: ${seen.get(key)} and ${owner}`);
            seen.set(key, owner);
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('the three forms, by example', () => {
  assert.equal(vaultName('rocketchat', 'mongodb-password'), 'lb-s-rocketchat--mongodb-password');
  assert.match(vaultName('rocketchat', 'smtp.config'), /^lb-b-[a-z2-7]+$/);
  assert.match(vaultName('rocketchat', 'a--b'), /^lb-b-/);
  assert.match(vaultName('ns', 'x'.repeat(200)), /^lb-h-[a-z2-7]{52}$/);
});
