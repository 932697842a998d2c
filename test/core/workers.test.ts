// The worker pool and the shared ring a backup hands bytes to its workers through: no server needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SharedRing, WorkerPool } from '../../src/core/workers.ts';
import { isLifeboatError } from '../../src/core/errors.ts';

/** Whether `p` settles within a few turns of the event loop. */
async function settlesSoon(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return settled;
}

test('shared ring: places do not overlap, wrap to the start, and come back in any order', async () => {
  const ring = new SharedRing(100);
  const a = await ring.take(40);
  const b = await ring.take(40);
  assert.deepEqual([a, b], [0, 40]);
  // 20 bytes left at the end: a 30-byte place waits until the start is free, then goes there.
  const c = ring.take(30);
  assert.equal(await settlesSoon(c), false, 'no room yet');
  ring.give(b); // out of order: the tail cannot pass `a`, so still no room
  assert.equal(await settlesSoon(c), false, 'the oldest place still holds the start');
  ring.give(a);
  assert.equal(await c, 0, 'wrapped to the start');
  // Everything but [0, 30) is free once `a` and `b` are back; the next place follows the head.
  assert.equal(await ring.take(50), 30);
  const full = ring.take(30);
  assert.equal(await settlesSoon(full), false, 'only 20 bytes free');
  ring.give(0);
  assert.equal(await full, 0, 'the end stays unused: [80, 100) is too small, the start is free again');
});

test('shared ring: a place larger than the ring is refused; an unknown give is a bug', async () => {
  const ring = new SharedRing(64);
  await assert.rejects(ring.take(65), (e) => isLifeboatError(e, 'INTERNAL'));
  assert.throws(
    () => ring.give(3),
    (e) => isLifeboatError(e, 'INTERNAL'),
  );
  // Given back whole, the ring starts again at 0 and can hand out all of itself.
  const whole = await ring.take(64);
  ring.give(whole);
  assert.equal(await ring.take(64), 0);
});

test('shared ring: abort stops a waiting take and every later one; gives still work', async () => {
  const ring = new SharedRing(64);
  const held = await ring.take(64);
  const waiting = ring.take(8);
  const reason = new Error('the backup failed');
  ring.abort(reason);
  // The place it waits for may never come back (its chunk failed): it must not wait for good.
  await assert.rejects(waiting, (e) => e === reason);
  await assert.rejects(ring.take(1), (e) => e === reason);
  ring.give(held);
});

test('shared ring: bytes written on one thread are read on another without a copy', async () => {
  const ring = new SharedRing(1024);
  const offset = await ring.take(16);
  ring.bytes.set(Buffer.from('shared-ring-text'), offset);
  const entry = new URL('data:text/javascript,' + encodeURIComponent(ECHO_WORKER));
  const pool = new WorkerPool<{ op: string; offset?: number; length?: number }, unknown>(entry, 2, {
    ring: ring.buffer,
  });
  try {
    assert.equal(await pool.run({ op: 'read', offset, length: 16 }), 'shared-ring-text');
  } finally {
    await pool.close();
  }
});

test('worker pool: a pinned task runs on its worker, in order; unpinned tasks use both', async () => {
  const entry = new URL('data:text/javascript,' + encodeURIComponent(ECHO_WORKER));
  const pool = new WorkerPool<{ op: string; ms?: number }, unknown>(entry, 2, {});
  try {
    const finished: number[] = [];
    // Later tasks are quicker: run anywhere, they would finish first.
    const pinned = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        pool.run({ op: 'thread', ms: 30 - 5 * i }, [], 1).then((thread) => (finished.push(i), thread)),
      ),
    );
    assert.equal(new Set(pinned).size, 1, 'every pinned task on one worker');
    assert.deepEqual(finished, [0, 1, 2, 3, 4, 5], 'in the order asked');
    const other = await Promise.all(Array.from({ length: 2 }, () => pool.run({ op: 'thread', ms: 50 })));
    assert.equal(new Set(other).size, 2, 'two slow unpinned tasks run at once, one on each worker');
    await assert.rejects(pool.run({ op: 'thread' }, [], 2), (e) => isLifeboatError(e, 'INTERNAL'));
  } finally {
    await pool.close();
  }
});

test('worker pool with depth: tasks sent ahead still run in order; a worker that dies fails all it had', async () => {
  const entry = new URL('data:text/javascript,' + encodeURIComponent(ECHO_WORKER));
  const pool = new WorkerPool<{ op: string; ms?: number }, unknown>(entry, 1, {}, 3);
  try {
    const finished: number[] = [];
    // The worker runs its messages one after another, so the order sent is the order done.
    await Promise.all(
      Array.from({ length: 7 }, (_, i) =>
        pool.run({ op: 'block', ms: 3 * (7 - i) }, [], 0).then(() => finished.push(i)),
      ),
    );
    assert.deepEqual(finished, [0, 1, 2, 3, 4, 5, 6]);
    // A worker that answers out of order (these wait on timers) still settles every task.
    const answered = await Promise.all(
      Array.from({ length: 3 }, (_, i) => pool.run({ op: 'thread', ms: 30 - 10 * i })),
    );
    assert.equal(answered.length, 3);
    // Two more in the worker behind the one that exits, two still queued here: every one fails.
    const dying = pool.run({ op: 'exit', ms: 50 });
    const rest = Array.from({ length: 4 }, () => pool.run({ op: 'block' }));
    const results = await Promise.allSettled([dying, ...rest]);
    assert.ok(
      results.every((r) => r.status === 'rejected' && isLifeboatError(r.reason, 'INTERNAL')),
      JSON.stringify(results.map((r) => r.status)),
    );
    await assert.rejects(pool.run({ op: 'block' }), (e) => isLifeboatError(e, 'INTERNAL'), 'broken');
  } finally {
    await pool.close();
  }
});

// A worker entry for these tests only: replies with its thread id (after a wait, or blocking), reads
// the ring, or exits.
const ECHO_WORKER = `
import { parentPort, threadId, workerData } from 'node:worker_threads';
parentPort.on('message', ({ id, request }) => {
  if (request.op === 'exit' || request.op === 'block') {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, request.ms ?? 0);
    if (request.op === 'exit') process.exit(1);
    parentPort.postMessage({ id, value: threadId });
  } else if (request.op === 'read') {
    const bytes = new Uint8Array(workerData.ring, request.offset, request.length);
    parentPort.postMessage({ id, value: Buffer.from(bytes).toString() });
  } else setTimeout(() => parentPort.postMessage({ id, value: threadId }), request.ms ?? 0);
});
`;
