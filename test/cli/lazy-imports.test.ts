/**
 * Heavy SDKs load only when a command needs them: @kubernetes/client-node alone adds ~90 MiB of RSS and
 * the MongoDB driver ~30 MiB, which a MongoDB backup (300 MiB budget) or a `snapshots` must not pay.
 * node:http and node:https too: ~3.7 MiB of heap that every full collection of a backup or restore marks
 * again (docs/performance.md).
 * And each command's own implementation: the MongoDB, Kubernetes, secrets and Terraform sources, the
 * operations behind the pipeline, drills and recovery, the notification dispatcher, the YAML parser and
 * ajv load when the command (or config file) that needs them runs. The command table with its options
 * stays whole, for help and the config check.
 * Checked by recording every module the CLI entry point resolves (no server needed).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../env/index.ts';

function modulesLoadedBy(entry: string): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.push(r.url); return r; } });
    await import(${JSON.stringify(entry)});
    console.log(JSON.stringify(seen));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return JSON.parse(out) as string[];
}

test('loading the CLI loads no Kubernetes, MongoDB driver, cloud SDK or HTTP stack', () => {
  const urls = modulesLoadedBy(path.join(PROJECT_ROOT, 'src/cli/main.ts'));
  assert.ok(
    urls.some((u) => u.endsWith('/src/cli/cmd_cluster_state_backup.ts')),
    'the hook saw the commands',
  );
  for (const heavy of ['@kubernetes/client-node', '/mongodb/lib/', '@azure/', '@aws-sdk/', 'node:http']) {
    assert.deepEqual(
      urls.filter((u) => u.includes(heavy)),
      [],
      `${heavy} is loaded eagerly`,
    );
  }
});

/**
 * Modules the command table may load at start-up from the layers it otherwise leaves to each command:
 * pure constants and formatters the options, help and renderers need.
 */
const LIGHT_AT_START = [
  '/src/observability/audit.ts',
  '/src/observability/notify/config.ts',
  '/src/observability/prom-text.ts',
  '/src/operations/drill-records.ts',
  '/src/operations/operation-record.ts',
  '/src/operations/pipeline-config.ts',
  '/src/operations/recover.ts',
  '/src/operations/runner.ts',
  '/src/operations/validate-layers.ts',
  '/src/sources/kubernetes/diff.ts',
  '/src/sources/kubernetes/helm.ts',
  '/src/sources/kubernetes/objects.ts',
  '/src/sources/mongodb/position.ts',
];

test("loading the CLI loads no command's implementation, YAML parser or schema compiler", () => {
  const urls = modulesLoadedBy(path.join(PROJECT_ROOT, 'src/cli/main.ts'));
  const eager = urls.filter(
    (u) =>
      (/\/src\/(sources|operations|observability)\//.test(u) && !LIGHT_AT_START.some((l) => u.endsWith(l))) ||
      /\/node_modules\/(yaml|ajv)\//.test(u),
  );
  assert.deepEqual(eager, [], 'loaded at start-up instead of by the command that needs it');
});
