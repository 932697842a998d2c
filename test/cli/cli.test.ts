// The CLI contract: option sources (flag > env > config file), --json everywhere, exit codes, help.
// Local repository only; no server needed.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { COMMANDS } from '../../src/cli/commands.ts';
import { runCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';

let work: TempDir;
let env: NodeJS.ProcessEnv;
before(async () => {
  work = await tempDir();
  env = { XDG_CONFIG_HOME: path.join(work.path, 'cfg'), LIFEBOAT_REPO: '', LIFEBOAT_PASSWORD: '' };
  delete env.LIFEBOAT_PASSWORD;
});
after(() => work.cleanup());

test('embedded defaults: ./lifeboat-repo and a 0600 key file outside it', async () => {
  const r = await runCli(['init', '--json'], { env, cwd: work.path });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.location, path.join(work.path, 'lifeboat-repo'));
  assert.match(r.json.keystore, /key file .*cfg\/lifeboat\/default.key/);
  const { stat } = await import('node:fs/promises');
  assert.equal((await stat(path.join(work.path, 'cfg/lifeboat/default.key'))).mode & 0o777, 0o600);
  const snaps = await runCli(['snapshots', '--json'], { env, cwd: work.path });
  assert.deepEqual(snaps.json, []);
});

test('option sources: flag beats environment beats config file', async () => {
  const cfg = path.join(work.path, 'lifeboat.yaml');
  await writeFile(cfg, `repo: ${path.join(work.path, 'from-config')}\n`);
  const fromConfig = await runCli(['init', '--json'], {
    env: { ...env, LIFEBOAT_CONFIG: cfg, LIFEBOAT_PASSWORD: 'x' },
    cwd: work.path,
  });
  assert.equal(fromConfig.json.location, path.join(work.path, 'from-config'));
  const fromEnv = await runCli(['init', '--json'], {
    env: {
      ...env,
      LIFEBOAT_CONFIG: cfg,
      LIFEBOAT_PASSWORD: 'x',
      LIFEBOAT_REPO: path.join(work.path, 'from-env'),
    },
  });
  assert.equal(fromEnv.json.location, path.join(work.path, 'from-env'));
  const fromFlag = await runCli(['--repo', path.join(work.path, 'from-flag'), 'init', '--json'], {
    env: {
      ...env,
      LIFEBOAT_CONFIG: cfg,
      LIFEBOAT_PASSWORD: 'x',
      LIFEBOAT_REPO: path.join(work.path, 'from-env'),
    },
  });
  assert.equal(fromFlag.json.location, path.join(work.path, 'from-flag'));
  // Command options from the config file, scoped by command.
  await writeFile(cfg, `repo: ${path.join(work.path, 'from-config')}\nforget:\n  keep-last: 3\n`);
  const forget = await runCli(['forget', '--dry-run', '--json'], {
    env: { ...env, LIFEBOAT_CONFIG: cfg, LIFEBOAT_PASSWORD: 'x' },
  });
  assert.equal(forget.code, 0, forget.stderr);
  assert.equal(forget.json.dryRun, true);
});

test('bad config and usage errors exit 2 with one line; --json reports the error as JSON', async () => {
  const bad = path.join(work.path, 'bad.yaml');
  await writeFile(bad, 'repo: [unclosed\n');
  const r = await runCli(['snapshots'], { env: { ...env, LIFEBOAT_CONFIG: bad } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^lifeboat: config file .*bad.yaml is not valid YAML/);
  const missing = await runCli(['snapshots', '--config', path.join(work.path, 'none.yaml')], { env });
  assert.equal(missing.code, 2);
  const unknownFlag = await runCli(['snapshots', '--bogus', '--json'], { env, cwd: work.path });
  assert.equal(unknownFlag.code, 2);
  assert.equal(unknownFlag.json.error.code, 'USAGE');
  assert.equal(unknownFlag.stderr.trim().split('\n').length, 1);
  const unknownCmd = await runCli(['frobnicate'], { env });
  assert.equal(unknownCmd.code, 2);
  assert.match(unknownCmd.stderr, /unknown command "frobnicate"/);
  const noPolicy = await runCli(['forget'], { env, cwd: work.path });
  assert.equal(noPolicy.code, 2);
  assert.match(noPolicy.stderr, /no retention policy given/);
});

test('help lists every command and documents each option with its environment variable', async () => {
  const r = await runCli(['help'], { env });
  assert.equal(r.code, 0);
  for (const c of COMMANDS) assert.ok(r.stdout.includes(c.path.join(' ')), c.path.join(' '));
  const sub = await runCli(['forget', '--help'], { env });
  assert.equal(sub.code, 0);
  assert.match(sub.stdout, /--keep-daily N .*\[env LIFEBOAT_KEEP_DAILY\]/);
});

test('secrets never appear in errors: credentials in URLs are redacted', async () => {
  const r = await runCli(['--repo', 'ftp://admin:hunter2@example.invalid/x', 'snapshots'], { env });
  assert.equal(r.code, 2);
  assert.ok(!r.stderr.includes('hunter2'), r.stderr);
});
