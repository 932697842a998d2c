/**
 * The one conformance suite every storage backend runs (local disk, Azure Blob, S3, …): the contract in
 * src/core/storage/backend.ts, checked against a real peer. A backend's test file calls
 * `backendConformance(name, factory)`; nothing here knows which backend it is testing.
 *
 * Factories return a fresh, empty location per call (a new temp dir, container, bucket or prefix), with
 * `create()` not yet called, configured so that objects of `LARGE_SIZE` bytes take the backend's
 * multi-part path (blocks, multipart upload) and `list` pages hold at most `listPageSize` entries.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { isLifeboatError } from '../../src/core/errors.ts';
import { discard } from '../../src/core/memory.ts';
import { OBJECT_TYPES, type Backend, type Handle, type ObjectType } from '../../src/core/storage/backend.ts';

/** Bigger than two 5 MiB parts, not a multiple of any block size. */
export const LARGE_SIZE = 11 * 1024 * 1024 + 12_345;

/** Big enough that a save is still under way a few milliseconds after it started, on any backend here. */
const ABORTED_SIZE = 20 * 1024 * 1024;

export interface BackendFixture {
  backend: Backend;
  /** Strings that must never appear in `backend.location` (keys, tokens, passwords). */
  secrets?: string[];
  cleanup?: () => Promise<void>;
}

export interface FactoryOptions {
  listPageSize: number;
}

export type BackendFactory = (options: FactoryOptions) => Promise<BackendFixture>;

export function id(): string {
  return randomBytes(32).toString('hex');
}

async function collect(b: Backend, type: ObjectType, signal?: AbortSignal): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for await (const o of b.list(type, { signal })) {
    assert.ok(!m.has(o.name), `list(${type}) yielded ${o.name} twice`);
    m.set(o.name, o.size);
  }
  return m;
}

async function leftovers(b: Backend): Promise<string[]> {
  const ids: string[] = [];
  for await (const l of b.listLeftovers?.() ?? []) ids.push(l.id);
  return ids;
}

async function rejectsWith(p: Promise<unknown>, code: string, what: string): Promise<Error> {
  try {
    await p;
  } catch (e) {
    assert.ok(isLifeboatError(e), `${what}: expected LifeboatError ${code}, got ${(e as Error)?.stack ?? e}`);
    assert.equal(e.code, code, `${what}: expected ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`${what}: expected ${code}, but it succeeded`);
}

export function backendConformance(name: string, factory: BackendFactory): void {
  describe(`backend conformance: ${name}`, () => {
    const fixtures: BackendFixture[] = [];
    const fresh = async (listPageSize = 1000): Promise<Backend> => {
      const f = await factory({ listPageSize });
      fixtures.push(f);
      await f.backend.create();
      return f.backend;
    };
    after(async () => {
      for (const f of fixtures) {
        await f.backend.close();
        await f.cleanup?.();
      }
    });

    test('create is idempotent and location carries no secrets', async () => {
      const f = await factory({ listPageSize: 1000 });
      fixtures.push(f);
      await f.backend.create();
      await f.backend.create();
      assert.ok(f.backend.location.length > 0);
      for (const s of f.secrets ?? [])
        assert.ok(!f.backend.location.includes(s), `location ${f.backend.location} leaks a secret`);
    });

    test('a location that was never created lists nothing and has no objects', async () => {
      const f = await factory({ listPageSize: 1000 });
      fixtures.push(f);
      for (const type of OBJECT_TYPES)
        assert.equal((await collect(f.backend, type)).size, 0, `lists no ${type}`);
      const err = await f.backend.load({ type: 'config', name: 'config' }).then(
        () => assert.fail('load on an uncreated location succeeded'),
        (e: unknown) => e,
      );
      assert.ok(
        isLifeboatError(err, 'NOT_FOUND') || isLifeboatError(err, 'NO_REPOSITORY'),
        `NOT_FOUND or NO_REPOSITORY, got ${err}`,
      );
    });

    test('save/load/stat round trip for every object type', async () => {
      const b = await fresh();
      const written = new Map<string, Buffer>();
      for (const type of OBJECT_TYPES) {
        const h: Handle = { type, name: type === 'config' ? 'config' : id() };
        const data = randomBytes(100 + OBJECT_TYPES.indexOf(type) * 37);
        await b.save(h, data);
        written.set(`${type}/${h.name}`, data);
        assert.deepEqual(await b.load(h), data);
        assert.deepEqual(await b.stat(h), { name: h.name, size: data.length });
      }
      const empty: Handle = { type: 'keys', name: id() };
      await b.save(empty, new Uint8Array(0));
      assert.equal((await b.load(empty)).length, 0);
      assert.equal((await b.stat(empty)).size, 0);
    });

    test('missing objects: load and stat throw NOT_FOUND, remove succeeds', async () => {
      const b = await fresh();
      const h: Handle = { type: 'snapshots', name: id() };
      await rejectsWith(b.load(h), 'NOT_FOUND', 'load missing');
      await rejectsWith(b.load(h, { offset: 0, length: 10 }), 'NOT_FOUND', 'ranged load missing');
      await rejectsWith(b.stat(h), 'NOT_FOUND', 'stat missing');
      await b.remove(h);
    });

    test('ranged reads, including ranges past the end', async () => {
      const b = await fresh();
      const h: Handle = { type: 'data', name: id() };
      const data = randomBytes(10_000);
      await b.save(h, data);
      assert.deepEqual(await b.load(h, { offset: 0, length: 1 }), data.subarray(0, 1));
      assert.deepEqual(await b.load(h, { offset: 1234, length: 4321 }), data.subarray(1234, 1234 + 4321));
      assert.deepEqual(await b.load(h, { offset: 9_990, length: 10 }), data.subarray(9_990));
      assert.deepEqual(
        await b.load(h, { offset: 9_990, length: 100 }),
        data.subarray(9_990),
        'range crossing the end returns what exists',
      );
      assert.equal(
        (await b.load(h, { offset: 10_000, length: 5 })).length,
        0,
        'range starting at the end is empty',
      );
      assert.equal(
        (await b.load(h, { offset: 50_000, length: 5 })).length,
        0,
        'range far past the end is empty',
      );
      assert.equal((await b.load(h, { offset: 5, length: 0 })).length, 0);
    });

    test('write-once: a second save of the same name fails with ALREADY_EXISTS and keeps the first', async () => {
      const b = await fresh();
      for (const type of ['data', 'index', 'snapshots', 'keys', 'locks', 'config'] as ObjectType[]) {
        const h: Handle = { type, name: type === 'config' ? 'config' : id() };
        const first = randomBytes(64);
        await b.save(h, first);
        await rejectsWith(b.save(h, randomBytes(64)), 'ALREADY_EXISTS', `second save of ${type}`);
        await rejectsWith(
          b.save(h, randomBytes(128)),
          'ALREADY_EXISTS',
          `second save of ${type} with another size`,
        );
        assert.deepEqual(await b.load(h), first, `${type} kept its first content`);
      }
    });

    test('overwrite replaces a lock (lock refresh)', async () => {
      const b = await fresh();
      const h: Handle = { type: 'locks', name: id() };
      await b.save(h, Buffer.from('{"time":1}'));
      await b.save(h, Buffer.from('{"time":2,"refreshed":true}'), { overwrite: true });
      assert.equal((await b.load(h)).toString(), '{"time":2,"refreshed":true}');
      const fresh2: Handle = { type: 'locks', name: id() };
      await b.save(fresh2, Buffer.from('x'), { overwrite: true });
      assert.equal((await b.load(fresh2)).toString(), 'x', 'overwrite of a missing object creates it');
    });

    test('remove is idempotent and removes only its object', async () => {
      const b = await fresh();
      const a: Handle = { type: 'index', name: id() };
      const c: Handle = { type: 'index', name: id() };
      await b.save(a, Buffer.from('a'));
      await b.save(c, Buffer.from('c'));
      await b.remove(a);
      await rejectsWith(b.load(a), 'NOT_FOUND', 'load removed');
      await b.remove(a);
      assert.equal((await b.load(c)).toString(), 'c');
      assert.deepEqual([...(await collect(b, 'index')).keys()], [c.name]);
      // A removed name can be written again (prune then a new backup of the same content).
      await b.save(a, Buffer.from('again'));
      assert.equal((await b.load(a)).toString(), 'again');
    });

    test('list yields every object of a type across pages, and nothing of other types', async () => {
      const b = await fresh(7);
      for (const type of OBJECT_TYPES)
        assert.equal((await collect(b, type)).size, 0, `fresh repository lists no ${type}`);
      const expected = new Map<string, number>();
      await Promise.all(
        Array.from({ length: 23 }, async (_, i) => {
          const name = id();
          expected.set(name, i + 1);
          await b.save({ type: 'data', name }, randomBytes(i + 1));
        }),
      );
      const snaps = new Map<string, number>();
      for (let i = 0; i < 9; i++) {
        const name = id();
        snaps.set(name, 3);
        await b.save({ type: 'snapshots', name }, Buffer.from('abc'));
      }
      assert.equal((await collect(b, 'config')).size, 0, 'no config yet');
      await b.save({ type: 'config', name: 'config' }, Buffer.from('cfg'));
      assert.deepEqual(await collect(b, 'config'), new Map([['config', 3]]));
      assert.deepEqual(await collect(b, 'data'), expected);
      assert.deepEqual(await collect(b, 'snapshots'), snaps);
      assert.equal((await collect(b, 'index')).size, 0);
      assert.equal((await collect(b, 'locks')).size, 0);
    });

    test('large objects round trip intact, with ranges across part boundaries', async () => {
      const b = await fresh();
      const h: Handle = { type: 'data', name: id() };
      const data = randomBytes(LARGE_SIZE);
      await b.save(h, data);
      assert.equal((await b.stat(h)).size, LARGE_SIZE);
      const back = await b.load(h);
      assert.equal(
        createHash('sha256').update(back).digest('hex'),
        createHash('sha256').update(data).digest('hex'),
      );
      const mid = 5 * 1024 * 1024 - 1000;
      assert.deepEqual(
        await b.load(h, { offset: mid, length: 4 * 1024 * 1024 }),
        data.subarray(mid, mid + 4 * 1024 * 1024),
      );
      await rejectsWith(b.save(h, randomBytes(LARGE_SIZE)), 'ALREADY_EXISTS', 'second large save');
      assert.equal(
        createHash('sha256')
          .update(await b.load(h))
          .digest('hex'),
        createHash('sha256').update(data).digest('hex'),
      );
    });

    test('load gives the caller a buffer of its own: freeing it changes no later load or the saved bytes', async () => {
      const b = await fresh();
      const h: Handle = { type: 'data', name: id() };
      const data = randomBytes(1024 * 1024);
      await b.save(h, data);
      const whole = await b.load(h);
      const range = await b.load(h, { offset: 4096, length: 512 * 1024 });
      // What a restore and a check do with the blobs they read (memory.ts): detach them once used.
      discard(whole, range);
      assert.equal(whole.length, 0, 'a whole-object load is a buffer discard can free');
      assert.equal(range.length, 0, 'a ranged load is a buffer discard can free');
      assert.deepEqual(
        await b.load(h, { offset: 4096, length: 512 * 1024 }),
        data.subarray(4096, 4096 + 512 * 1024),
      );
      assert.ok((await b.load(h)).equals(data));
    });

    test('concurrent writers of one name: exactly one wins, the rest get ALREADY_EXISTS', async () => {
      const b = await fresh();
      for (const size of [200, LARGE_SIZE]) {
        const h: Handle = { type: 'data', name: id() };
        const contents = Array.from({ length: size > 1000 ? 3 : 8 }, () => randomBytes(size));
        const results = await Promise.allSettled(contents.map((c) => b.save(h, c)));
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        assert.equal(
          won.length,
          1,
          `exactly one writer wins (size ${size}): ${results.map((r) => r.status).join(',')}`,
        );
        for (const r of results) {
          if (r.status === 'rejected') {
            assert.ok(
              isLifeboatError(r.reason, 'ALREADY_EXISTS'),
              `loser gets ALREADY_EXISTS, got ${r.reason?.stack ?? r.reason}`,
            );
          }
        }
        const stored = await b.load(h);
        assert.ok(stored.equals(contents[won[0]]), 'stored content is the winner’s, whole');
      }
    });

    test('a call whose signal already fired rejects INTERRUPTED and changes nothing', async () => {
      const b = await fresh();
      const kept: Handle = { type: 'index', name: id() };
      await b.save(kept, Buffer.from('kept'));
      const signal = AbortSignal.abort();
      const small: Handle = { type: 'data', name: id() };
      const large: Handle = { type: 'data', name: id() };
      await rejectsWith(b.create({ signal }), 'INTERRUPTED', 'create');
      await rejectsWith(b.save(small, randomBytes(100), { signal }), 'INTERRUPTED', 'small save');
      await rejectsWith(b.save(large, randomBytes(LARGE_SIZE), { signal }), 'INTERRUPTED', 'large save');
      await rejectsWith(
        b.save(kept, Buffer.from('replaced'), { signal, overwrite: true }),
        'INTERRUPTED',
        'overwrite',
      );
      await rejectsWith(b.load(kept, undefined, { signal }), 'INTERRUPTED', 'load');
      await rejectsWith(b.load(kept, { offset: 0, length: 2 }, { signal }), 'INTERRUPTED', 'ranged load');
      await rejectsWith(b.stat(kept, { signal }), 'INTERRUPTED', 'stat');
      await rejectsWith(b.remove(kept, { signal }), 'INTERRUPTED', 'remove');
      await rejectsWith(collect(b, 'index', signal), 'INTERRUPTED', 'list');
      await rejectsWith(collect(b, 'config', signal), 'INTERRUPTED', 'list config');
      if (b.listLeftovers) {
        const leftovers = (async () => {
          for await (const _ of b.listLeftovers!({ signal }));
        })();
        await rejectsWith(leftovers, 'INTERRUPTED', 'list leftovers');
      }
      if (b.removeLeftover)
        await rejectsWith(b.removeLeftover('x', { signal }), 'INTERRUPTED', 'remove leftover');
      assert.equal((await b.load(kept)).toString(), 'kept', 'neither removed nor overwritten');
      await rejectsWith(b.load(small), 'NOT_FOUND', 'no small object');
      await rejectsWith(b.load(large), 'NOT_FOUND', 'no large object');
      assert.deepEqual([...(await collect(b, 'data')).keys()], []);
    });

    test('a save aborted while under way leaves no object and no debris', async () => {
      const b = await fresh();
      // Aborted as soon as it started, before anything it sent could have been answered: always stopped.
      const first: Handle = { type: 'data', name: id() };
      const c = new AbortController();
      const saving = b.save(first, randomBytes(ABORTED_SIZE), { signal: c.signal });
      c.abort();
      await rejectsWith(saving, 'INTERRUPTED', 'save aborted at once');
      await rejectsWith(b.load(first), 'NOT_FOUND', 'nothing saved');
      assert.deepEqual(await leftovers(b), [], 'a save stopped before it sent anything leaves no debris');
      // Aborted mid-transfer: stopped, or (on a fast disk) already done, but never part of an object.
      for (const ms of [5, 50]) {
        const h: Handle = { type: 'data', name: id() };
        const body = randomBytes(ABORTED_SIZE);
        const ac = new AbortController();
        const p = b.save(h, body, { signal: ac.signal });
        setTimeout(() => ac.abort(), ms);
        const outcome = await p.then(
          () => undefined,
          (e: unknown) => e,
        );
        if (outcome === undefined) {
          assert.ok((await b.load(h)).equals(body), `saved whole (abort after ${ms} ms came too late)`);
          continue;
        }
        assert.ok(isLifeboatError(outcome, 'INTERRUPTED'), `INTERRUPTED after ${ms} ms, got ${outcome}`);
        await rejectsWith(b.load(h), 'NOT_FOUND', `no object after an abort at ${ms} ms`);
      }
      // A part the server was still receiving when the abort came may land after the upload was aborted
      // (S3 says so); such debris must at least be listed as a leftover, for prune to remove.
      for (const l of await leftovers(b)) await b.removeLeftover!(l);
      assert.deepEqual(await leftovers(b), [], 'every leftover can be removed');
      // And the backend still works.
      const after: Handle = { type: 'data', name: id() };
      await b.save(after, Buffer.from('fine'));
      assert.equal((await b.load(after)).toString(), 'fine');
    });

    test('concurrent saves of many distinct objects all land', async () => {
      const b = await fresh(10);
      const items = Array.from({ length: 40 }, () => ({
        name: id(),
        data: randomBytes(1000 + Math.floor(Math.random() * 5000)),
      }));
      await Promise.all(items.map((it) => b.save({ type: 'index', name: it.name }, it.data)));
      const listed = await collect(b, 'index');
      assert.equal(listed.size, items.length);
      for (const it of items) {
        assert.equal(listed.get(it.name), it.data.length);
        assert.deepEqual(await b.load({ type: 'index', name: it.name }), it.data);
      }
    });
  });
}
