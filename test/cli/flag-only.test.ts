// Overrides of a safety check are typed flags only: an environment variable or a lifeboat.yaml key set
// once for something else must never switch them on. Local repository, no server.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { openBackend } from '../../src/core/storage/open.ts';
import { openKeystore } from '../../src/core/keystore/open.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { runCli } from '../env/cli.ts';
import { tempDir } from '../env/index.ts';

test('unlock --remove-all comes only from the command line, not from LIFEBOAT_REMOVE_ALL or the config file', async () => {
  const work = await tempDir();
  try {
    const repo = path.join(work.path, 'repo');
    const env = { LIFEBOAT_PASSWORD: 'flag only', XDG_CONFIG_HOME: path.join(work.path, 'cfg') };
    assert.equal((await runCli(['--repo', repo, 'init'], { env })).code, 0);
    // A live lock: held by this (running) test process.
    const held = await Repository.open(await openBackend(repo), await openKeystore({}, env));
    await held.lock('shared', 'a restore that is still running');

    const viaEnv = await runCli(['--repo', repo, 'unlock', '--json'], {
      env: { ...env, LIFEBOAT_REMOVE_ALL: 'true' },
    });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.equal(viaEnv.json.removed, 0, 'the environment does not remove a live lock');

    const config = path.join(work.path, 'lifeboat.yaml');
    await writeFile(config, 'unlock:\n  remove-all: true\n');
    const viaConfig = await runCli(['--repo', repo, '--config', config, 'unlock'], { env });
    assert.equal(viaConfig.code, 2, 'a flag-only option in the config file is an error');
    assert.match(viaConfig.stderr, /unlock\.remove-all/);
    assert.equal((await held.listLocks()).length, 1);

    const typed = await runCli(['--repo', repo, 'unlock', '--remove-all', '--json'], { env });
    assert.equal(typed.json.removed, 1, 'typed, it does');
    await held.close();
  } finally {
    await work.cleanup();
  }
});
