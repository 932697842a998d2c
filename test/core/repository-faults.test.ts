// Needs: Azurite and versitygw (test/env/backends.ts), with test/env/fault-proxy.ts in front of each;
// drives the real CLI. The promise under faults: retried where it should be, reported clearly
// otherwise, and never a repository that `check` finds inconsistent or a snapshot that references data
// that was not written.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { azureBackend, s3Backend } from '../env/backends.ts';
import {
  startFaultProxy,
  AZURE_BUSY,
  S3_SLOWDOWN,
  type FaultProxy,
  type RequestInfo,
} from '../env/fault-proxy.ts';
import { runCli } from '../env/cli.ts';
import { pseudoRandom } from '../env/data.ts';
import { tempDir, type TempDir } from '../env/index.ts';

const packPut = (r: RequestInfo) =>
  (r.method === 'PUT' || r.method === 'POST') && r.url.includes('/repo/data/');

for (const [kind, busy] of [
  [azureBackend, AZURE_BUSY],
  [s3Backend, S3_SLOWDOWN],
] as const) {
  describe(`repository under storage faults: ${kind.name}`, () => {
    let proxy: FaultProxy;
    let work: TempDir;
    let loc: Awaited<ReturnType<typeof kind.create>>;
    let viaProxy: (args: string[]) => ReturnType<typeof runCli>;
    let direct: (args: string[]) => ReturnType<typeof runCli>;

    before(async () => {
      proxy = await startFaultProxy(await kind.upstream!());
      work = await tempDir();
      loc = await kind.create({ viaEndpoint: proxy.url });
      const common = { LIFEBOAT_PASSWORD: 'faults', XDG_CONFIG_HOME: path.join(work.path, 'cfg') };
      viaProxy = (args) =>
        runCli(['--repo', loc.url, ...args], { env: { ...loc.env, ...common }, cwd: work.path });
      direct = (args) =>
        runCli(['--repo', loc.directUrl!, ...args], { env: { ...loc.directEnv, ...common }, cwd: work.path });
      const init = await viaProxy(['init']);
      assert.equal(init.code, 0, init.stderr);
    });
    after(async () => {
      await proxy?.close();
      await loc?.cleanup();
      await work?.cleanup();
    });

    test('throttling during a backup is ridden out; the snapshot is complete', async () => {
      const src = path.join(work.path, 'a');
      await mkdir(src, { recursive: true });
      const data = pseudoRandom('faults-a', 40 * 1024 * 1024);
      await writeFile(path.join(src, 'a.bin'), data);
      proxy.clear();
      let n = 0;
      // Every third pack upload request is refused as "busy", across the whole backup.
      const rule = proxy.add({
        match: (r) => packPut(r) && ++n % 3 === 0,
        action: { kind: 'status', ...busy },
      });
      const b = await viaProxy(['files', 'backup', src, '--json']);
      assert.equal(b.code, 0, b.stderr);
      assert.ok(rule.hits >= 1, 'faults were injected');
      proxy.clear();
      const check = await direct(['check', '--read-data']);
      assert.equal(check.code, 0, check.stderr);
      const out = path.join(work.path, 'a-restored');
      const r = await direct(['files', 'restore', b.json.id, '--target', out]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await readFile(path.join(out, 'a', 'a.bin'))).equals(data));
    });

    test('storage failing for good mid-backup: one clear line, non-zero exit, no snapshot, check stays clean', async () => {
      const before = await direct(['snapshots', '--json']);
      assert.equal(before.code, 0, before.stderr);
      const src = path.join(work.path, 'b');
      await mkdir(src, { recursive: true });
      await writeFile(path.join(src, 'b.bin'), pseudoRandom('faults-b', 48 * 1024 * 1024));
      proxy.clear();
      let packs = 0;
      // The first pack upload request goes through, then every connection is reset mid-body.
      proxy.add({
        match: (r) => packPut(r) && ++packs > 1,
        action: { kind: 'reset-request', afterBytes: 64 * 1024 },
      });
      const b = await viaProxy(['files', 'backup', src]);
      assert.notEqual(b.code, 0, 'backup must fail');
      const lines = b.stderr.trim().split('\n');
      assert.match(lines[lines.length - 1], /cannot reach|UNREACHABLE|attempts/i, b.stderr);
      proxy.clear();
      const after = await direct(['snapshots', '--json']);
      assert.equal(after.json.length, before.json.length, 'no snapshot was committed');
      const unlock = await direct(['unlock']);
      assert.equal(unlock.code, 0, unlock.stderr);
      const check = await direct(['check', '--read-data']);
      assert.equal(check.code, 0, check.stderr + check.stdout);
      // And the next backup, with the storage healthy again, works.
      const again = await direct(['files', 'backup', src]);
      assert.equal(again.code, 0, again.stderr);
    });
  });
}
