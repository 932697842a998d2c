/* eslint-disable @typescript-eslint/no-explicit-any -- payloads and CLI JSON are untyped in these tests */
/**
 * The audit log: written by commands through the CLI, listed, verified; one changed (in storage, and
 * re-sealed with the key), removed, copied or reordered record is found and named (exit 3); two writers
 * appending at once leave a valid log; an interrupted command still gets its record.
 */
import assert from 'node:assert/strict';
import { cp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeEvent } from '../../src/core/events.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { openBackend } from '../../src/core/storage/open.ts';
import { AuditLog, auditHash, type AuditBody } from '../../src/observability/audit.ts';
import { runCli, spawnCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';

const PASSWORD = 'audit test passphrase';
let work: TempDir;
let base: string;
const envFor = (repo: string): NodeJS.ProcessEnv => ({
  LIFEBOAT_REPO: repo,
  LIFEBOAT_PASSWORD: PASSWORD,
  LIFEBOAT_KEYSTORE: 'passphrase',
  XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
  LIFEBOAT_ACTOR: 'ci-robot',
});
const cli = (repo: string, args: string[]) => runCli(args, { env: envFor(repo), cwd: work.path });

async function openRepo(repo: string): Promise<Repository> {
  return Repository.open(await openBackend(repo, {}), new PassphraseKeystore(PASSWORD, 'test'));
}

/** Audit record files in name (= time) order. */
async function auditFiles(repo: string): Promise<string[]> {
  return (await readdir(path.join(repo, 'records'))).filter((n) => n.startsWith('audit_')).sort(byTime);
}
/** The log's own order (records.ts `list`): the name's time stamp, then the whole name. */
function byTime(a: string, b: string): number {
  const t = (n: string) => n.split('_').at(-2)!;
  return t(a) < t(b) ? -1 : t(a) > t(b) ? 1 : a < b ? -1 : a > b ? 1 : 0;
}

async function copyRepo(name: string): Promise<string> {
  const to = path.join(work.path, name);
  await cp(base, to, { recursive: true });
  return to;
}

async function verify(repo: string) {
  const r = await cli(repo, ['audit', 'verify', '--json']);
  assert.ok(r.json, r.stderr);
  return r;
}

before(async () => {
  work = await tempDir('lifeboat-audit-');
  base = path.join(work.path, 'base');
  await writeFile(path.join(work.path, 'data.txt'), 'hello audit');
  assert.equal((await cli(base, ['init'])).code, 0);
  for (let i = 0; i < 3; i++) {
    const r = await cli(base, ['files', 'backup', path.join(work.path, 'data.txt'), '--json']);
    assert.equal(r.code, 0, r.stderr);
  }
  const failed = await cli(base, ['files', 'restore', 'deadbeef', '--target', path.join(work.path, 'x')]);
  assert.equal(failed.code, 1);
});
after(() => work?.cleanup());

describe('audit log', () => {
  test('every changing command appended one record; list shows them in order with who and how', async () => {
    const r = await cli(base, ['audit', 'list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.json.map((x: any) => [x.seq, x.operation, x.result]),
      [
        [1, 'init', 'success'],
        [2, 'files backup', 'success'],
        [3, 'files backup', 'success'],
        [4, 'files backup', 'success'],
        [5, 'files restore', 'failure'],
      ],
    );
    assert.equal(r.json[0].prev, 'genesis');
    for (let i = 1; i < r.json.length; i++) assert.equal(r.json[i].prev, r.json[i - 1].hash);
    assert.ok(r.json.every((x: any) => x.actor === 'ci-robot' && x.host));
    assert.equal(r.json[4].event.error.code, 'NOT_FOUND');
    assert.equal(r.json[1].layer, 'files');
    assert.match(r.json[1].snapshot, /^[0-9a-f]{64}$/);

    const op = await cli(base, ['audit', 'list', '--operation', 'files restore', '--json']);
    assert.deepEqual(
      op.json.map((x: any) => x.seq),
      [5],
    );
    const future = await cli(base, ['audit', 'list', '--since', '2999-01-01', '--json']);
    assert.deepEqual(future.json, []);
    const recent = await cli(base, ['audit', 'list', '--since', '1h', '--json']);
    assert.equal(recent.json.length, 5);
    const bad = await cli(base, ['audit', 'list', '--since', 'yesterday']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--since "yesterday" is neither a duration nor a time — e\.g\. --since 24h/);

    const human = await cli(base, ['audit', 'list']);
    assert.match(human.stdout, /files restore\s+files\s+failure\s+ci-robot@/);
  });

  test('verify: an intact log passes and names its head', async () => {
    const repo = await copyRepo('intact');
    const r = await verify(repo);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.ok, true);
    assert.equal(r.json.records, 5);
    assert.equal(r.json.head.seq, 5);
    const headOk = await cli(repo, ['audit', 'verify', '--head', r.json.head.hash, '--json']);
    assert.equal(headOk.code, 0, headOk.stderr);
    assert.equal(headOk.json.headFound, true);
  });

  test('verify: a record changed in storage (no key) is named, exit 3', async () => {
    const repo = await copyRepo('changed-storage');
    const files = await auditFiles(repo);
    const victim = path.join(repo, 'records', files[2]);
    const bytes = await readFile(victim);
    bytes[bytes.length - 20] ^= 0x01;
    await writeFile(victim, bytes);
    const r = await verify(repo);
    assert.equal(r.code, 3);
    assert.equal(r.json.ok, false);
    assert.equal(r.json.firstBad.record, `records/${files[2]}`);
    assert.match(r.json.firstBad.problem, /does not authenticate/);
    const human = await cli(repo, ['audit', 'verify']);
    assert.equal(human.code, 3);
    assert.match(human.stdout, new RegExp(`first bad record records/${files[2]}`));
  });

  test('verify: a record changed and re-sealed with the key is found (its hash, or the next record)', async () => {
    const repo = await copyRepo('changed-key');
    const files = await auditFiles(repo);
    const r0 = await openRepo(repo);
    try {
      // Change the outcome of the failed restore's predecessor and keep its hash: the hash no longer fits.
      const body = await r0.records.get<AuditBody>(files[1]);
      body.event.result = 'failure';
      await r0.saveSealed('records', files[1], body, true);
    } finally {
      await r0.close();
    }
    const r = await verify(repo);
    assert.equal(r.code, 3);
    assert.equal(r.json.firstBad.record, `records/${files[1]}`);
    assert.match(r.json.firstBad.problem, /does not match its hash/);

    // Re-hashed too: the record itself is consistent, but the next one no longer follows it.
    const repo2 = await copyRepo('changed-key-rehashed');
    const r1 = await openRepo(repo2);
    try {
      const body = await r1.records.get<AuditBody>(files[1]);
      body.event.actor = 'someone-else';
      body.hash = auditHash(body);
      await r1.saveSealed('records', files[1], body, true);
    } finally {
      await r1.close();
    }
    const v = await verify(repo2);
    assert.equal(v.code, 3);
    assert.equal(v.json.firstBad.record, `records/${files[2]}`);
    assert.match(v.json.firstBad.problem, /the record before it .* is missing or was changed/);
  });

  test('verify: a removed record is found through the record after it', async () => {
    const repo = await copyRepo('removed');
    const files = await auditFiles(repo);
    await rm(path.join(repo, 'records', files[2]));
    const r = await verify(repo);
    assert.equal(r.code, 3);
    assert.equal(r.json.firstBad.record, `records/${files[3]}`);
    assert.match(r.json.firstBad.problem, /missing or was changed/);
  });

  test('verify: the newest record removed is found against a head hash kept elsewhere', async () => {
    const repo = await copyRepo('cut');
    const head = (await verify(repo)).json.head.hash;
    const files = await auditFiles(repo);
    // verify appended its own record: remove the two newest.
    await rm(path.join(repo, 'records', files.at(-1)!));
    await rm(path.join(repo, 'records', files.at(-2)!));
    const r = await cli(repo, ['audit', 'verify', '--head', head, '--json']);
    assert.equal(r.code, 3);
    assert.equal(r.json.headFound, false);
    assert.match(r.json.firstBad.problem, /given head hash is gone/);
  });

  test('verify: two records swapped are found as reordered', async () => {
    const repo = await copyRepo('swapped');
    const files = await auditFiles(repo);
    const a = path.join(repo, 'records', files[1]);
    const b = path.join(repo, 'records', files[2]);
    await rename(a, a + '.tmp');
    await rename(b, a);
    await rename(a + '.tmp', b);
    const r = await verify(repo);
    assert.equal(r.code, 3);
    assert.equal(r.json.firstBad.record, `records/${files[1]}`);
    assert.match(r.json.firstBad.problem, /reordered/);
  });

  test('verify: a copied record is found', async () => {
    const repo = await copyRepo('copied');
    const files = await auditFiles(repo);
    const copy = files[1].replace(/_[0-9a-f]{8}$/, '_00000000');
    await cp(path.join(repo, 'records', files[1]), path.join(repo, 'records', copy));
    const r = await verify(repo);
    assert.equal(r.code, 3);
    assert.match(r.json.firstBad.problem, /is a copy of|reordered/);
  });

  test('two writers appending at once fork the chain; the log stays valid and goes on', async () => {
    const repo = await copyRepo('concurrent');
    const [a, b] = [await openRepo(repo), await openRepo(repo)];
    try {
      const event = (operation: string) =>
        makeEvent({
          operation,
          effect: 'change',
          result: 'success',
          exitCode: 0,
          startedAt: new Date(),
          finishedAt: new Date(),
          repository: repo,
          actor: 'test',
        });
      const logA = new AuditLog(a);
      const logB = new AuditLog(b);
      // Both read the same head before either writes: the race, made certain.
      const [headA, headB] = await Promise.all([logA.head(), logB.head()]);
      assert.equal(headA!.body.hash, headB!.body.hash);
      const [x, y] = await Promise.all([
        logA.appendAfter(headA, event('files backup')),
        logB.appendAfter(headB, event('mongodb backup')),
      ]);
      assert.equal(x.body.seq, y.body.seq);
      assert.equal(x.body.prev, y.body.prev);
      let v = await new AuditLog(a).verify();
      assert.equal(v.ok, true, JSON.stringify(v.problems));
      assert.equal(v.forks, 1);
      // The next append follows the newest record in name order.
      const next = await logA.append(event('check'));
      const newest = [x, y].sort((p, q) => byTime(p.ref.name, q.ref.name)).at(-1)!;
      assert.equal(next.body.prev, newest.body.hash);
      v = await new AuditLog(b).verify();
      assert.equal(v.ok, true, JSON.stringify(v.problems));
      // And through the CLI: two commands at once leave a valid log.
      const runs = await Promise.all([
        cli(repo, ['files', 'backup', path.join(work.path, 'data.txt')]),
        cli(repo, ['files', 'backup', path.join(work.path, 'data.txt')]),
      ]);
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      const cliVerify = await verify(repo);
      assert.equal(cliVerify.code, 0, JSON.stringify(cliVerify.json.problems));
      assert.equal(cliVerify.json.records, 3 + 5 + 2);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('an interrupted command still gets its record (written past the cancelled signal)', async () => {
    const repo = await copyRepo('interrupted');
    const child = spawnCli(['files', 'backup', '--stdin'], { env: envFor(repo), cwd: work.path });
    // Listen at once: a child that ends while we wait below must not be missed.
    const closed = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdin!.on('error', () => {}); // it may have stopped before the rest is written
    child.stdin!.write(Buffer.alloc(64 * 1024, 1));
    // Wait until the backup holds its lock (a lock object exists), then interrupt it mid-stream.
    for (let i = 0; i < 200; i++) {
      const locks = await readdir(path.join(repo, 'locks')).catch(() => []);
      if (locks.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGINT');
    // Reading stdin does not watch the signal: more data makes the backup reach storage, which does.
    await new Promise((r) => setTimeout(r, 300));
    child.stdin!.end(Buffer.alloc(20 * 1024 * 1024, 2));
    // A child that never ends is a failure with its stderr, not a twenty-minute test timeout.
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    const code = await closed.finally(() => clearTimeout(guard));
    assert.equal(code, 130, stderr);
    const r = await cli(repo, ['audit', 'list', '--operation', 'files backup', '--json']);
    const last = r.json.at(-1);
    assert.equal(last.result, 'interrupted', stderr);
    assert.equal(last.event.error.code, 'INTERRUPTED');
    assert.equal((await verify(repo)).code, 0);
  });
});
