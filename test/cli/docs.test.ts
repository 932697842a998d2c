// Operator docs stay in step with the code (no server needed).
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { cliReference, configSchemaJson } from '../../scripts/gen-cli-docs.ts';
import { PROJECT_ROOT } from '../env/index.ts';

test('docs/cli.md documents every command exactly as --help prints it', () => {
  const current = readFileSync(path.join(PROJECT_ROOT, 'docs/cli.md'), 'utf8');
  assert.equal(current, cliReference(), 'docs/cli.md is out of date: run `node scripts/gen-cli-docs.ts`');
});

test('docs/lifeboat.schema.json is the JSON Schema the option tables generate', () => {
  const current = readFileSync(path.join(PROJECT_ROOT, 'docs/lifeboat.schema.json'), 'utf8');
  assert.equal(
    current,
    configSchemaJson(),
    'docs/lifeboat.schema.json is out of date: run `node scripts/gen-cli-docs.ts`',
  );
});

test("the guide's script paths exist and are executable", () => {
  for (const script of [
    'mongodb-backup.sh',
    'mongodb-restore.sh',
    'create-pvc-snapshots.sh',
    'restore-from-snapshots.sh',
    'backup-cluster-state.sh',
    'backup-validation.sh',
    'backup-integrity-check.sh',
  ]) {
    const p = path.join(PROJECT_ROOT, 'scripts/backup', script);
    assert.ok(existsSync(p), p);
    assert.ok(statSync(p).mode & 0o100, `${p} is executable`);
  }
});
