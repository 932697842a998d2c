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

test('every script path the guide names exists here and is executable', () => {
  const guide = readFileSync(path.join(PROJECT_ROOT, '../shared/seed/backup-restore-guide.md'), 'utf8');
  const scripts = [...new Set([...guide.matchAll(/\bscripts\/[\w/.-]+\.sh\b/g)].map((m) => m[0]))];
  // The guide names at least the backup, secrets and lifecycle scripts; a parse that finds none proves nothing.
  assert.ok(scripts.length >= 10, scripts.join(', '));
  for (const script of scripts) {
    const p = path.join(PROJECT_ROOT, script);
    assert.ok(existsSync(p), `${script} (named by the guide) is missing`);
    assert.ok(statSync(p).mode & 0o100, `${p} is executable`);
  }
});
