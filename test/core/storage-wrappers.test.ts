// Needs: nothing (an in-memory backend, test/env/memory-backend.ts, and a fake sleep and clock).
// The Backend wrappers of src/core/storage/wrappers/: retry, per-request timeout, concurrency limit,
// and the conformance suite through the whole wrapper stack.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { LifeboatError, isLifeboatError, isTransient } from '../../src/core/errors.ts';
import type { Backend, Handle } from '../../src/core/storage/backend.ts';
import { wrapCloudBackend } from '../../src/core/storage/open.ts';
import { LimitingBackend } from '../../src/core/storage/wrappers/limiting.ts';
import { RetryingBackend, type RetryOptions } from '../../src/core/storage/wrappers/retrying.ts';
import { TimeoutBackend } from '../../src/core/storage/wrappers/timeout.ts';
import { MemoryTestBackend, busy } from '../env/memory-backend.ts';
import { backendConformance, id } from './backend-conformance.ts';

const data = (): Handle => ({ type: 'data', name: id() });

async function rejectsWith(p: Promise<unknown>, code: string): Promise<LifeboatError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isLifeboatError(e), `expected LifeboatError ${code}, got ${(e as Error)?.stack ?? e}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

/** A clock that only moves when the retry wrapper sleeps (or a test says so), and the sleeps it saw. */
function fakeTime() {
  const t = {
    now: 0,
    sleeps: [] as number[],
    options: {} as RetryOptions,
  };
  t.options = {
    now: () => t.now,
    random: () => 1, // the longest wait jitter allows: budgets are reached soonest
    sleep: async (ms, signal) => {
      signal?.throwIfAborted();
      t.sleeps.push(ms);
      t.now += ms;
    },
  };
  return t;
}

/** Fails the first `n` calls of `method` with `error` (before they act). */
function failFirst(mem: MemoryTestBackend, method: string, n: number, error: () => Error = () => busy()) {
  let left = n;
  mem.before = (call) => {
    if (call.method === method && left > 0) {
      left--;
      throw error();
    }
  };
}

describe('RetryingBackend', () => {
  test('transient failures are retried with growing, jittered waits until the call succeeds', async () => {
    const mem = new MemoryTestBackend();
    const time = fakeTime();
    const b = new RetryingBackend(mem, { ...time.options, baseDelayMs: 100 });
    failFirst(mem, 'save', 3);
    const h = data();
    await b.save(h, Buffer.from('x'));
    assert.equal(mem.callsOf('save').length, 4);
    assert.deepEqual(time.sleeps, [100, 200, 400]);
    assert.equal(mem.objects.size, 1);
  });

  test('final errors are not retried', async () => {
    for (const code of ['AUTH', 'PERMISSION', 'NOT_FOUND', 'NO_SPACE'] as const) {
      const mem = new MemoryTestBackend();
      const time = fakeTime();
      const b = new RetryingBackend(mem, time.options);
      failFirst(mem, 'stat', 1, () => new LifeboatError(code, `stat: ${code}`));
      const e = await rejectsWith(b.stat(data()), code);
      assert.equal(e.message, `stat: ${code}`, 'passed through unchanged');
      assert.equal(mem.callsOf('stat').length, 1);
      assert.deepEqual(time.sleeps, []);
    }
  });

  test('gives up after maxAttempts, saying so in the message', async () => {
    const mem = new MemoryTestBackend();
    const time = fakeTime();
    const b = new RetryingBackend(mem, { ...time.options, maxAttempts: 5 });
    failFirst(mem, 'load', Infinity);
    const e = await rejectsWith(b.load(data()), 'UNREACHABLE');
    assert.match(e.message, /503 ServerBusy\) after 5 attempts$/);
    assert.equal(mem.callsOf('load').length, 5);
    assert.equal(isTransient(e), false, 'a retried-out error is final');
  });

  test('gives up once the elapsed-time budget would be exceeded', async () => {
    const mem = new MemoryTestBackend();
    const time = fakeTime();
    const b = new RetryingBackend(mem, { ...time.options, maxAttempts: 100, maxElapsedMs: 120_000 });
    // Each attempt takes 50 s of (fake) time before it fails.
    mem.before = () => {
      time.now += 50_000;
      throw busy();
    };
    const e = await rejectsWith(b.remove(data()), 'UNREACHABLE');
    assert.match(e.message, /after 3 attempts$/);
    assert.equal(mem.callsOf('remove').length, 3);
  });

  test('an abort during the backoff rejects INTERRUPTED at once', async () => {
    const mem = new MemoryTestBackend();
    // Real sleep, and a wait of a minute: only the abort can end it quickly.
    const b = new RetryingBackend(mem, { baseDelayMs: 60_000, random: () => 1 });
    failFirst(mem, 'save', Infinity);
    const c = new AbortController();
    const started = Date.now();
    setTimeout(() => c.abort(), 20);
    const e = await rejectsWith(b.save(data(), Buffer.from('x'), { signal: c.signal }), 'INTERRUPTED');
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    assert.equal(isTransient(e), false);
    assert.equal(mem.callsOf('save').length, 1);
  });

  test('a caller abort during an attempt is not retried', async () => {
    const mem = new MemoryTestBackend();
    const time = fakeTime();
    const b = new RetryingBackend(mem, time.options);
    const c = new AbortController();
    mem.before = () => new Promise(() => c.abort());
    await rejectsWith(b.load(data(), undefined, { signal: c.signal }), 'INTERRUPTED');
    assert.equal(mem.callsOf('load').length, 1);
  });

  test('lost write: a retried save meeting its own first attempt (same bytes) succeeds', async () => {
    const mem = new MemoryTestBackend();
    const b = new RetryingBackend(mem, fakeTime().options);
    let lost = 1;
    // The first save lands, but its answer never arrives.
    mem.after = (call) => {
      if (call.method === 'save' && lost-- > 0) throw busy('save');
    };
    const h = data();
    const body = randomBytes(1000);
    await b.save(h, body);
    assert.deepEqual(
      mem.calls.map((c) => c.method),
      ['save', 'save', 'load'],
    );
    assert.ok(mem.objects.get(`data/${h.name.slice(0, 2)}/${h.name}`)!.equals(body));
  });

  test('lost write: other bytes under the name are a real ALREADY_EXISTS', async () => {
    const mem = new MemoryTestBackend();
    const b = new RetryingBackend(mem, fakeTime().options);
    const h = data();
    let first = true;
    // The first attempt fails before acting; meanwhile another writer stores other content.
    mem.before = async (call) => {
      if (call.method === 'save' && first) {
        first = false;
        await mem.save(h, Buffer.from('theirs'));
        throw busy('save');
      }
    };
    await rejectsWith(b.save(h, Buffer.from('ours!!')), 'ALREADY_EXISTS');
  });

  test('an ALREADY_EXISTS without an earlier transient failure is not checked', async () => {
    const mem = new MemoryTestBackend();
    const b = new RetryingBackend(mem, fakeTime().options);
    const h = data();
    await mem.save(h, Buffer.from('same'));
    mem.calls.length = 0;
    await rejectsWith(b.save(h, Buffer.from('same')), 'ALREADY_EXISTS');
    assert.deepEqual(
      mem.calls.map((c) => c.method),
      ['save'],
    );
  });

  test('overwrite saves are retried without the lost-write check', async () => {
    const mem = new MemoryTestBackend();
    const b = new RetryingBackend(mem, fakeTime().options);
    failFirst(mem, 'save', 1);
    const h: Handle = { type: 'locks', name: id() };
    await b.save(h, Buffer.from('lock'), { overwrite: true });
    assert.equal(mem.callsOf('save').length, 2);
    assert.equal(mem.callsOf('load').length, 0);
  });

  test('a failed part of a multi-part save is retried alone, not the whole upload', async () => {
    const mem = new MemoryTestBackend({ partSize: 1000 });
    const b = new RetryingBackend(mem, fakeTime().options);
    let failures = 0;
    mem.before = (call) => {
      if (call.method === 'part' && call.index === 2 && failures++ < 2) throw busy('part');
    };
    const h = data();
    const body = randomBytes(4500);
    await b.save(h, body);
    assert.equal(mem.callsOf('part').length, 5 + 2, 'five parts, the third one tried three times');
    assert.equal(mem.callsOf('save').length, 1, 'committed once');
    assert.deepEqual(await b.load(h), body);
  });

  test('a part that keeps failing gives up, and the upload is not retried on top', async () => {
    const mem = new MemoryTestBackend({ partSize: 1000 });
    const b = new RetryingBackend(mem, { ...fakeTime().options, maxAttempts: 3 });
    mem.before = (call) => {
      if (call.method === 'part' && call.index === 1) throw busy('part');
    };
    const e = await rejectsWith(b.save(data(), randomBytes(3000)), 'UNREACHABLE');
    assert.match(e.message, /after 3 attempts$/);
    assert.equal(mem.callsOf('part').length, 1 + 3);
    assert.equal(mem.objects.size, 0);
  });

  test('a lost answer to the commit of a multi-part save is recognised as done', async () => {
    const mem = new MemoryTestBackend({ partSize: 1000 });
    const b = new RetryingBackend(mem, fakeTime().options);
    let lost = 1;
    mem.after = (call) => {
      if (call.method === 'save' && lost-- > 0) throw busy('commit');
    };
    const h = data();
    const body = randomBytes(2500);
    await b.save(h, body);
    assert.deepEqual(await b.load(h), body);
  });

  test('a listing that fails part-way is restarted and still yields every name once', async () => {
    const mem = new MemoryTestBackend({ listPageSize: 3 });
    const names = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const h = data();
      names.add(h.name);
      await mem.save(h, Buffer.from([i]));
    }
    const b = new RetryingBackend(mem, fakeTime().options);
    let failures = 0;
    mem.before = (call) => {
      if (call.method === 'list' && call.index === 2 && failures++ < 2) throw busy('list');
    };
    const seen: string[] = [];
    for await (const o of b.list('data')) seen.push(o.name);
    assert.equal(seen.length, 10, 'no name twice');
    assert.deepEqual(new Set(seen), names);
    assert.equal(failures, 3, 'failed twice, then went through');
  });

  test('a listing that keeps failing gives up with the attempt count', async () => {
    const mem = new MemoryTestBackend({ listPageSize: 1 });
    await mem.save(data(), Buffer.from('a'));
    await mem.save(data(), Buffer.from('b'));
    const b = new RetryingBackend(mem, { ...fakeTime().options, maxAttempts: 4 });
    mem.before = (call) => {
      if (call.method === 'list' && call.index === 1) throw busy('list');
    };
    const seen: string[] = [];
    const e = await rejectsWith(
      (async () => {
        for await (const o of b.list('data')) seen.push(o.name);
      })(),
      'UNREACHABLE',
    );
    assert.match(e.message, /after 4 attempts$/);
    assert.equal(seen.length, 1, 'the first entry was yielded once, before the failures');
  });
});

describe('TimeoutBackend', () => {
  test('an attempt that stalls past its deadline fails as transient UNREACHABLE, its request aborted', async () => {
    const mem = new MemoryTestBackend();
    const b = new TimeoutBackend(mem, { timeoutMs: 50 });
    let innerSignal: AbortSignal | undefined;
    mem.before = (call) => {
      innerSignal = call.signal;
      return new Promise(() => {}); // never answers; only the signal ends it
    };
    const e = await rejectsWith(b.stat(data()), 'UNREACHABLE');
    assert.ok(isTransient(e));
    assert.match(e.message, /no answer within 50 ms/);
    assert.ok(innerSignal?.aborted, 'the stalled request was aborted');
  });

  test('a caller abort is INTERRUPTED, not a timeout', async () => {
    const mem = new MemoryTestBackend();
    const b = new TimeoutBackend(mem, { timeoutMs: 10_000 });
    mem.before = () => new Promise(() => {});
    const c = new AbortController();
    setTimeout(() => c.abort(), 10);
    const e = await rejectsWith(b.load(data(), undefined, { signal: c.signal }), 'INTERRUPTED');
    assert.equal(isTransient(e), false);
  });

  test('the deadline grows with the bytes a save sends, and parts get their own', async () => {
    const MiB = 1024 * 1024;
    const mem = new MemoryTestBackend({ partSize: MiB });
    // 50 ms, plus 200 ms per MiB sent.
    const b = new TimeoutBackend(mem, { timeoutMs: 50, slowestBytesPerSecond: 5 * MiB });
    let commit = 120;
    let secondPart = 120;
    mem.before = (call) =>
      new Promise((r) =>
        setTimeout(r, call.method === 'save' ? commit : call.index === 1 ? secondPart : 120),
      );
    await b.save(data(), randomBytes(MiB));
    await rejectsWith(b.save(data(), randomBytes(100)), 'UNREACHABLE');
    // Three 1 MiB parts one after the other (360 ms), then a quick commit: within the call's 650 ms.
    commit = 0;
    await b.save(data(), randomBytes(3 * MiB));
    // A part slower than its own 250 ms is found out, though the call as a whole had time left.
    secondPart = 400;
    const e = await rejectsWith(b.save(data(), randomBytes(3 * MiB)), 'UNREACHABLE');
    assert.match(e.message, /part 2\/3 in memory:\/\/test: no answer within 250 ms/);
  });

  test('a listing gets the deadline per entry, not for the time its caller spends', async () => {
    const mem = new MemoryTestBackend({ listPageSize: 1 });
    for (let i = 0; i < 3; i++) await mem.save(data(), Buffer.from([i]));
    const b = new TimeoutBackend(mem, { timeoutMs: 40 });
    let n = 0;
    for await (const _ of b.list('data')) {
      n++;
      await new Promise((r) => setTimeout(r, 60));
    }
    assert.equal(n, 3);
    mem.before = (call) => (call.method === 'list' && call.index === 1 ? new Promise(() => {}) : undefined);
    const e = await rejectsWith(
      (async () => {
        for await (const _ of b.list('data'));
      })(),
      'UNREACHABLE',
    );
    assert.ok(isTransient(e));
  });

  test('through the whole stack: a stalled attempt times out and the retry succeeds', async () => {
    const mem = new MemoryTestBackend();
    const b = wrapCloudBackend(mem, { timeout: { timeoutMs: 30 }, retry: fakeTime().options });
    let stalls = 1;
    mem.before = (call) => (call.method === 'load' && stalls-- > 0 ? new Promise(() => {}) : undefined);
    const h = data();
    await mem.save(h, Buffer.from('there'));
    assert.equal((await b.load(h)).toString(), 'there');
    assert.equal(mem.callsOf('load').length, 2);
  });
});

describe('LimitingBackend', () => {
  test('never more than the limit in flight, and every call gets through', async () => {
    const mem = new MemoryTestBackend();
    const b = new LimitingBackend(mem, 3);
    mem.before = () => new Promise((r) => setTimeout(r, 5 + Math.random() * 10));
    const hs = Array.from({ length: 20 }, data);
    await Promise.all(hs.map((h) => b.save(h, Buffer.from(h.name))));
    await Promise.all(hs.map((h) => b.load(h)));
    assert.equal(mem.maxInFlight, 3);
    assert.equal(mem.objects.size, 20);
  });

  test('a listing holds no slot while its caller works on an entry (no deadlock at limit 1)', async () => {
    const mem = new MemoryTestBackend({ listPageSize: 2 });
    for (let i = 0; i < 5; i++) await mem.save(data(), Buffer.from([i]));
    const b = new LimitingBackend(mem, 1);
    let loaded = 0;
    for await (const o of b.list('data')) {
      await b.load({ type: 'data', name: o.name });
      loaded++;
    }
    assert.equal(loaded, 5);
  });

  test('a call waiting for a slot is INTERRUPTED by its signal and takes none', async () => {
    const mem = new MemoryTestBackend();
    const b = new LimitingBackend(mem, 1);
    let release!: () => void;
    mem.before = () => new Promise<void>((r) => (release = r));
    const holder = b.stat(data()).catch(() => {});
    const c = new AbortController();
    const waiting = b.stat(data(), { signal: c.signal });
    c.abort();
    await rejectsWith(waiting, 'INTERRUPTED');
    release();
    await holder;
    mem.before = () => {};
    const h = data();
    await mem.save(h, Buffer.from('ok'));
    assert.equal((await b.load(h)).toString(), 'ok', 'the slot was not lost');
    assert.equal(mem.callsOf('stat').length, 1, 'the interrupted call never reached the backend');
  });
});

// The wrappers must keep the whole Backend contract: the conformance suite on the memory backend, bare
// and through the stack openBackend builds.
const conformanceBackend =
  (wrap: (b: MemoryTestBackend) => Backend) => async (o: { listPageSize: number }) => ({
    backend: wrap(new MemoryTestBackend({ listPageSize: o.listPageSize })),
  });
backendConformance(
  'memory (test double)',
  conformanceBackend((b) => b),
);
backendConformance(
  'memory through the wrappers',
  conformanceBackend((b) => wrapCloudBackend(b, { concurrency: 2 })),
);
