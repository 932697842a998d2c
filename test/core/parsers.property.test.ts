/**
 * Property-based tests of the core parsers that read bytes from storage: pack headers, sealed objects,
 * index files, snapshot manifests, key records, compressed blobs. Storage flips bits, uploads get cut
 * short, a bug writes a wrong type: whatever the bytes, a parser either returns something its callers can
 * use or throws a LifeboatError (INTEGRITY) naming the object, and never crashes (RangeError, TypeError),
 * hangs or allocates from a damaged length field.
 *
 * Inputs start valid (written by the real writers) and are then mutated (test/env/mutate.ts). fast-check
 * prints the seed and the shrunk counterexample on failure; re-run with it via `fc.assert(..., { seed })`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { compress, decompress, CODECS } from '../../src/core/compression.ts';
import { open, seal, SEAL_OVERHEAD } from '../../src/core/crypto.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { PackBuilder, readPackHeader, type BlobType } from '../../src/core/repository/pack.ts';
import {
  decodeIndexFile,
  decodeKeyRecord,
  decodeSnapshot,
  keyRecordChecksum,
  Repository,
  type IndexFile,
} from '../../src/core/repository/repository.ts';
import { SNAPSHOT_PURPOSES, SNAPSHOT_TYPES, type Snapshot } from '../../src/core/repository/model.ts';
import { openBackend } from '../../src/core/storage/open.ts';
import { tempDir } from '../env/index.ts';
import { summarize } from '../../src/cli/cmd_snapshots.ts';
import {
  PROPERTY_TIMEOUT,
  RUNS,
  applyByteMutations,
  byteMutations,
  jsonMutations,
  mutateJson,
  outcome,
  outcomeAsync,
} from '../env/mutate.ts';

const KEY = randomBytes(32);
const HEX64 = /^[0-9a-f]{64}$/;
const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
const safeNat = fc.nat({ max: Number.MAX_SAFE_INTEGER });

// ---- pack header -----------------------------------------------------------------------------------------

interface PackBlob {
  type: BlobType;
  id: string;
  sealed: Uint8Array;
  rawLength: number;
}

const packBlobs: fc.Arbitrary<PackBlob[]> = fc.array(
  fc.record({
    type: fc.constantFrom<BlobType>('data', 'tree'),
    id: hex64,
    // Stand-ins for sealed blobs: the header never looks inside them.
    sealed: fc.uint8Array({ minLength: 0, maxLength: 200 }),
    rawLength: fc.nat({ max: 0xffffffff }),
  }),
  { maxLength: 8 },
);

function buildPack(blobs: PackBlob[]) {
  const b = new PackBuilder();
  for (const x of blobs) b.add(x.type, x.id, Buffer.from(x.sealed), x.rawLength);
  return b.finish(KEY);
}

describe('pack header', () => {
  test('a valid pack reads back exactly the blobs written', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(packBlobs, (blobs) => {
        const pack = buildPack(blobs);
        assert.deepEqual(readPackHeader(KEY, pack.id, pack.bytes), pack.blobs);
      }),
      { numRuns: RUNS },
    );
  });

  test('a damaged pack gives the original header or INTEGRITY naming the pack', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(packBlobs, byteMutations, (blobs, ms) => {
        const pack = buildPack(blobs);
        const bytes = applyByteMutations(pack.bytes, ms);
        const r = outcome(() => readPackHeader(KEY, pack.id, bytes), `pack ${pack.id}`);
        // The header is authenticated: damage inside a blob leaves it readable (the pack's SHA-256 and
        // the blob's own seal catch that), anything else must be refused — never a different header.
        if (r.ok) assert.deepEqual(r.value, pack.blobs);
      }),
      { numRuns: RUNS },
    );
  });

  test('random bytes are never a pack', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = outcome(() => readPackHeader(KEY, 'p'.repeat(64), Buffer.from(bytes)), 'pack ppp');
        assert.equal(r.ok, false);
      }),
      { numRuns: RUNS },
    );
  });
});

// ---- sealed objects -----------------------------------------------------------------------------------

describe('sealed objects (open)', () => {
  test('any change to a sealed object is INTEGRITY naming it', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 256 }),
        fc.constantFrom('snapshots', 'index', 'config', 'pack-header', undefined),
        byteMutations,
        (plain, aad, ms) => {
          const sealed = seal(KEY, plain, aad);
          const damaged = applyByteMutations(sealed, ms);
          fc.pre(!damaged.equals(sealed));
          const r = outcome(() => open(KEY, damaged, 'snapshots/abc', aad), 'snapshots/abc');
          assert.equal(r.ok, false, 'a damaged sealed object opened');
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('the wrong key, the wrong purpose or a short object is INTEGRITY', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat({ max: SEAL_OVERHEAD + 8 }), (plain, cut) => {
        const sealed = seal(KEY, plain, 'index');
        assert.equal(outcome(() => open(randomBytes(32), sealed, 'x', 'index'), 'x').ok, false);
        assert.equal(outcome(() => open(KEY, sealed, 'x', 'snapshots'), 'x').ok, false);
        if (cut < sealed.length)
          assert.equal(outcome(() => open(KEY, sealed.subarray(0, cut), 'x', 'index'), 'x').ok, false);
      }),
      { numRuns: RUNS },
    );
  });
});

// ---- index files ----------------------------------------------------------------------------------------

const indexFile: fc.Arbitrary<IndexFile> = fc.record({
  packs: fc.array(
    fc.record({
      id: hex64,
      size: safeNat,
      blobs: fc.array(fc.tuple(hex64, fc.constantFrom<0 | 1>(0, 1), safeNat, safeNat, safeNat), {
        maxLength: 4,
      }),
    }),
    { maxLength: 4 },
  ),
});

/** What Repository.loadIndex/indexedPacks do with a parsed index file: they must not need more checks. */
function useIndex(file: IndexFile): void {
  const index = new Map<string, { pack: string; offset: number; length: number }>();
  for (const p of file.packs) {
    assert.match(p.id, HEX64);
    assert.ok(Number.isSafeInteger(p.size) && p.size >= 0);
    for (const [id, t, offset, length, rawLength] of p.blobs) {
      assert.match(id, HEX64);
      assert.ok(t === 0 || t === 1);
      for (const n of [offset, length, rawLength]) assert.ok(Number.isSafeInteger(n) && n >= 0);
      index.set(id, { pack: p.id, offset, length });
    }
  }
}

describe('index file', () => {
  test('a valid index file parses to itself', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(indexFile, (f) => {
        const v = decodeIndexFile(Buffer.from(JSON.stringify(f)), 'index/x');
        assert.deepEqual(v, JSON.parse(JSON.stringify(f)));
        useIndex(v);
      }),
      { numRuns: RUNS },
    );
  });

  test('a malformed index file parses to something usable or is INTEGRITY', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(indexFile, jsonMutations, (f, ms) => {
        const text = mutateJson(f, ms);
        const r = outcome(() => decodeIndexFile(Buffer.from(text), 'index/abc'), 'index/abc');
        if (r.ok) useIndex(r.value);
      }),
      { numRuns: RUNS },
    );
  });

  test('damaged bytes and non-JSON are INTEGRITY or usable', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          indexFile.chain((f) =>
            byteMutations.map((ms) => applyByteMutations(Buffer.from(JSON.stringify(f)), ms)),
          ),
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
          fc.json().map((t) => Buffer.from(t)),
        ),
        (bytes) => {
          const r = outcome(() => decodeIndexFile(bytes, 'index/abc'), 'index/abc');
          if (r.ok) useIndex(r.value);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

// ---- snapshot manifests -------------------------------------------------------------------------------

const item = fc.record(
  {
    name: fc.string({ maxLength: 12 }),
    kind: fc.constantFrom('file', 'dir', 'symlink', 'collection', 'oplog', 'resource'),
    meta: fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
    size: safeNat,
    sha256: fc.constantFrom('0'.repeat(64), 'ab'.repeat(32)),
    records: fc.nat(),
    chunks: fc.array(hex64, { maxLength: 3 }),
    chunkLists: fc.array(hex64, { maxLength: 2 }),
  },
  { requiredKeys: ['name', 'kind', 'meta', 'size', 'sha256', 'records'] },
);

const snapshot: fc.Arbitrary<Omit<Snapshot, 'id'>> = fc.record({
  type: fc.constantFrom(...SNAPSHOT_TYPES),
  purpose: fc.constantFrom(...SNAPSHOT_PURPOSES),
  tags: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
  paths: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
  meta: fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  time: fc
    .date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
    .map((d) => d.toISOString()),
  timestamp: fc.constant('20240101_000000'),
  host: fc.string({ maxLength: 10 }),
  summary: fc.record({ bytesProcessed: safeNat, bytesAdded: safeNat, items: fc.nat(), durationMs: fc.nat() }),
  items: fc.array(item, { maxLength: 4 }),
}) as fc.Arbitrary<Omit<Snapshot, 'id'>>;

/** What listing, `snapshots`, `show`, restore and retention read without further checks. */
function useSnapshot(s: Omit<Snapshot, 'id'>): void {
  assert.ok(SNAPSHOT_TYPES.includes(s.type));
  assert.ok(!Number.isNaN(Date.parse(s.time)));
  assert.equal(typeof s.timestamp, 'string');
  assert.equal(typeof s.host, 'string');
  assert.ok(s.tags.every((t) => typeof t === 'string'));
  assert.ok(s.paths.every((p) => typeof p === 'string'));
  assert.ok(s.meta && typeof s.meta === 'object');
  assert.ok(s.summary && typeof s.summary === 'object');
  for (const i of s.items) {
    assert.equal(typeof i.name, 'string');
    assert.equal(typeof i.kind, 'string');
    assert.ok(Number.isSafeInteger(i.size) && i.size >= 0);
    assert.equal(typeof i.sha256, 'string');
    // Sources read item.meta.<field> directly (files mode, pvc name, collection counts).
    assert.ok(i.meta && typeof i.meta === 'object' && !Array.isArray(i.meta));
    for (const c of [...(i.chunks ?? []), ...(i.chunkLists ?? [])]) assert.match(c, HEX64);
  }
  const row = summarize({ ...s, id: 'f'.repeat(64) });
  row.tags.join(',');
  assert.equal(row.items, s.items.length);
}

describe('snapshot manifest', () => {
  test('a valid manifest parses to itself', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(snapshot, (s) => {
        const v = decodeSnapshot(Buffer.from(JSON.stringify(s)), 'snapshots/x');
        assert.deepEqual(v, JSON.parse(JSON.stringify(s)));
        useSnapshot(v);
      }),
      { numRuns: RUNS },
    );
  });

  test('a manifest written before purposes gets the purpose its tags imply', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(snapshot, fc.constantFrom<string[]>([], ['pre-restore'], ['imported']), (s, tags) => {
        const { purpose: _purpose, ...old } = { ...s, tags };
        const v = decodeSnapshot(Buffer.from(JSON.stringify(old)), 'snapshots/x');
        const want = tags.includes('pre-restore')
          ? 'pre-restore'
          : tags.includes('imported')
            ? 'import'
            : 'backup';
        assert.equal(v.purpose, want);
        assert.deepEqual(
          { ...v, purpose: undefined },
          { ...JSON.parse(JSON.stringify(old)), purpose: undefined },
        );
      }),
      { numRuns: RUNS },
    );
  });

  test('a malformed manifest parses to something usable or is INTEGRITY', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(snapshot, jsonMutations, (s, ms) => {
        const text = mutateJson(s, ms);
        const r = outcome(() => decodeSnapshot(Buffer.from(text), 'snapshots/abc'), 'snapshots/abc');
        if (r.ok) useSnapshot(r.value);
      }),
      { numRuns: RUNS },
    );
  });

  test('damaged bytes and non-JSON are INTEGRITY or usable', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          snapshot.chain((s) =>
            byteMutations.map((ms) => applyByteMutations(Buffer.from(JSON.stringify(s)), ms)),
          ),
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
          fc.json().map((t) => Buffer.from(t)),
        ),
        (bytes) => {
          const r = outcome(() => decodeSnapshot(bytes, 'snapshots/abc'), 'snapshots/abc');
          if (r.ok) useSnapshot(r.value);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

// ---- key records -----------------------------------------------------------------------------------------

/** Key records as the keystores write them (fields of passphrase, keyfile and Azure Key Vault records). */
const keyRecord = fc.oneof(
  fc.record({
    kind: fc.constant('passphrase'),
    created: fc.constant('2024-01-01T00:00:00.000Z'),
    kdf: fc.constant('scrypt'),
    N: fc.constantFrom(16, 1024, 32768),
    r: fc.constantFrom(1, 8),
    p: fc.constant(1),
    salt: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64')),
    wrapped: fc.uint8Array({ minLength: 60, maxLength: 60 }).map((b) => Buffer.from(b).toString('base64')),
  }),
  fc.record({
    kind: fc.constant('keyfile'),
    created: fc.constant('2024-01-01T00:00:00.000Z'),
    fingerprint: hex64,
    wrapped: fc.uint8Array({ minLength: 60, maxLength: 60 }).map((b) => Buffer.from(b).toString('base64')),
  }),
  fc.record({
    kind: fc.constant('azure-keyvault'),
    created: fc.constant('2024-01-01T00:00:00.000Z'),
    vault: fc.constantFrom('https://v.vault.azure.net/'),
    mode: fc.constantFrom('secret', 'wrap'),
    name: fc.string({ unit: fc.constantFrom(...'abcdef-0123'), minLength: 1, maxLength: 12 }),
    version: hex64,
  }),
);

/** A record exactly as Repository stores it (storedKeyRecord): with repositoryId and checksum. */
function storedRecord(r: Record<string, unknown>, repositoryId: string): Buffer {
  const full: Record<string, unknown> = { ...r, repositoryId };
  full.checksum = keyRecordChecksum(full);
  return Buffer.from(JSON.stringify(full));
}

describe('key record', () => {
  test('a stored record decodes to itself, undamaged', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(keyRecord, hex64, (r, repo) => {
        const raw = storedRecord(r, repo);
        const d = decodeKeyRecord(raw);
        assert.equal(d.damaged, undefined);
        assert.deepEqual(d.record, JSON.parse(raw.toString()));
      }),
      { numRuns: RUNS },
    );
  });

  test('any changed byte of a checksummed record is reported damaged', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(keyRecord, hex64, fc.nat(), fc.integer({ min: 1, max: 255 }), (r, repo, at, xor) => {
        const raw = storedRecord(r, repo);
        raw[at % raw.length] ^= xor;
        const d = decodeKeyRecord(raw); // never throws: a damaged key must not hide the intact ones
        assert.equal(typeof d.damaged, 'string', `not reported damaged: ${raw.toString('latin1')}`);
        assert.equal(typeof d.record.kind, 'string');
      }),
      { numRuns: RUNS * 3 },
    );
  });

  test('arbitrary bytes decode to a record or a damaged one, never throw', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          keyRecord.chain((r) =>
            byteMutations.map((ms) => applyByteMutations(storedRecord(r, '0'.repeat(64)), ms)),
          ),
          keyRecord.chain((r) =>
            jsonMutations.map((ms) => Buffer.from(mutateJson({ ...r, repositoryId: 'x' }, ms))),
          ),
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
          fc.json().map((t) => Buffer.from(t)),
        ),
        (raw) => {
          const d = decodeKeyRecord(raw);
          assert.equal(typeof d.record.kind, 'string');
          assert.ok(d.damaged === undefined || typeof d.damaged === 'string');
        },
      ),
      { numRuns: RUNS },
    );
  });

  test(
    'a passphrase keystore refuses a damaged unchecksummed record with a typed error',
    PROPERTY_TIMEOUT,
    async () => {
      // Records written before checksums existed have none: their fields reach the keystore as they are.
      // scrypt must not be handed a damaged cost (a Node RangeError, or gigabytes of memory).
      const ks = new PassphraseKeystore('pw', 'test', { N: 16, r: 1, p: 1 });
      const master = randomBytes(32);
      const good = await ks.wrap(master, { repositoryId: 'r' });
      await fc.assert(
        fc.asyncProperty(jsonMutations, async (ms) => {
          const raw = Buffer.from(mutateJson(good, ms));
          const { record, damaged } = decodeKeyRecord(raw);
          if (damaged || record.kind !== 'passphrase') return;
          const r = await outcomeAsync(() => ks.unwrap(record, { repositoryId: 'r' }), undefined, [
            'INTEGRITY',
            'WRONG_KEY',
          ]);
          if (r.ok) assert.deepEqual(r.value, master);
        }),
        { numRuns: 100 },
      );
    },
  );
});

describe('key record, end to end', () => {
  test('a damaged old-style record is named, and another key still opens the repository', async () => {
    const dir = await tempDir('lifeboat-keyrec-');
    try {
      const cheap = { N: 16, r: 1, p: 1 };
      const ks = new PassphraseKeystore('pw', 'test', cheap);
      const backend = await openBackend(dir.path);
      const repo = await Repository.init(backend, ks);
      const other = await repo.addKey(new PassphraseKeystore('other', 'test', cheap));
      await repo.close();
      // Rewrite the first key as a record from before checksums, with a damaged cost: open must name
      // it (INTEGRITY), not let scrypt throw a RangeError.
      const first = (await listNames(dir.path)).find((n) => n !== other)!;
      const record = JSON.parse(await readFile(path.join(dir.path, 'keys', first), 'utf8'));
      delete record.checksum;
      record.N = 32749;
      await writeFile(path.join(dir.path, 'keys', first), JSON.stringify(record));
      const r = await outcomeAsync(() => Repository.open(backend, ks), `keys/${first.slice(0, 12)}`);
      assert.equal(r.ok, false);
      const reopened = await Repository.open(backend, new PassphraseKeystore('other', 'test', cheap));
      assert.equal(reopened.keyId, other);
      await reopened.close();
    } finally {
      await dir.cleanup();
    }
  });
});

async function listNames(repo: string): Promise<string[]> {
  return readdir(path.join(repo, 'keys'));
}

// ---- compressed blobs -------------------------------------------------------------------------------------

describe('decompression', () => {
  test(
    'a damaged compressed blob decompresses to something or is INTEGRITY naming it',
    PROPERTY_TIMEOUT,
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...CODECS),
          fc.oneof(
            fc.uint8Array({ maxLength: 2000 }),
            fc.string({ maxLength: 2000 }).map((s) => Buffer.from(s.repeat(3))),
          ),
          byteMutations,
          async (codec, plain, ms) => {
            const packed = await compress(plain, { codec });
            assert.deepEqual(await decompress(packed, 'blob x'), Buffer.from(plain));
            const damaged = applyByteMutations(packed, ms);
            const r = await outcomeAsync(() => decompress(damaged, 'blob abc'), 'blob abc');
            if (r.ok) assert.ok(Buffer.isBuffer(r.value));
          },
        ),
        { numRuns: RUNS },
      );
    },
  );

  test('random bytes decompress to something or are INTEGRITY', PROPERTY_TIMEOUT, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(0, 1, 2, 3, 255),
        fc.uint8Array({ maxLength: 300 }),
        async (codec, body) => {
          const r = await outcomeAsync(
            () => decompress(Buffer.from([codec, ...body]), 'blob abc'),
            'blob abc',
          );
          if (codec > 2) assert.equal(r.ok, false);
        },
      ),
      { numRuns: RUNS },
    );
    // An empty blob has no codec byte at all.
    const r = await outcomeAsync(() => decompress(Buffer.alloc(0), 'blob abc'), 'blob abc');
    assert.equal(r.ok, false);
  });
});
