/* eslint-disable @typescript-eslint/no-explicit-any -- the pipeline YAML is untyped */
/**
 * azure-pipelines/backup-automation.yml against the CLI it drives: the guide's schedule, the stages in
 * the guide's order, and every `lifeboat` command line in its scripts names a command that exists with
 * flags that command (or the global options) accepts, and stage names the pipeline knows. Azure DevOps
 * itself is not reachable here; its template expressions (`${{ }}`) are checked as text.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { COMMANDS, GLOBAL_OPTIONS } from '../../src/cli/commands.ts';
import { envName } from '../../src/cli/options.ts';
import { DEFAULT_STAGES } from '../../src/operations/pipeline-config.ts';
import { PROJECT_ROOT } from '../env/index.ts';

const FILE = path.join(PROJECT_ROOT, 'azure-pipelines/backup-automation.yml');
const SETUP = path.join(PROJECT_ROOT, 'azure-pipelines/templates/lifeboat-setup.yml');

/** Every `lifeboat …` invocation in a bash script, as argv (quotes removed, no shell expansion). */
function lifeboatCalls(script: string): string[][] {
  const calls: string[][] = [];
  for (const raw of script.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith('lifeboat ')) continue;
    const words = [...line.matchAll(/"[^"]*"|'[^']*'|[^\s]+/g)].map((m) => m[0].replace(/^["']|["']$/g, ''));
    const end = words.findIndex((w) => ['>', '||', '&&', '|', ';', '2>&1'].includes(w));
    calls.push(words.slice(1, end < 0 ? undefined : end));
  }
  return calls;
}

/** Checks one argv against the CLI's command table; returns the command path and its flags. */
function checkCall(argv: string[]): { path: string; flags: Map<string, string | true> } {
  const words = argv.filter((w) => !w.startsWith('-'));
  const cmd = [...COMMANDS]
    .sort((a, b) => b.path.length - a.path.length)
    .find((c) => c.path.every((w, i) => words[i] === w));
  assert.ok(cmd, `lifeboat ${argv.join(' ')}: no such command`);
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const [name, inline] = a.slice(2).split('=', 2);
    const spec = cmd.options[name] ?? GLOBAL_OPTIONS[name];
    assert.ok(spec, `lifeboat ${cmd.path.join(' ')}: no option --${name}`);
    if (spec.type === 'string') {
      const value = inline ?? argv[++i];
      assert.ok(value !== undefined && !value.startsWith('--'), `--${name} needs a value`);
      flags.set(name, value);
    } else flags.set(name, true);
  }
  return { path: cmd.path.join(' '), flags };
}

describe('azure-pipelines/backup-automation.yml', async () => {
  const text = await readFile(FILE, 'utf8');
  const doc = YAML.parse(text);
  const scripts = (doc.stages as any[]).flatMap((s) =>
    s.jobs.flatMap((j: any) => j.steps.map((st: any) => st.inputs?.inlineScript ?? st.bash).filter(Boolean)),
  );

  test('scheduled daily at 02:00 UTC, even without new commits, and no CI or PR trigger', () => {
    assert.equal(doc.schedules.length, 1);
    assert.equal(doc.schedules[0].cron, '0 2 * * *');
    assert.equal(doc.schedules[0].always, true);
    assert.equal(doc.trigger, 'none');
    assert.equal(doc.pr, 'none');
  });

  test('manual runs take the layers and a reason the CLI records', () => {
    const byName = Object.fromEntries((doc.parameters as any[]).map((p) => [p.name, p]));
    assert.equal(byName.layers.type, 'object');
    for (const layer of byName.layers.default) assert.ok(DEFAULT_STAGES[layer], `layer ${layer} is a stage`);
    const run = COMMANDS.find((c) => c.path.join(' ') === 'pipeline run')!;
    const reasonSpec = run.options.reason;
    for (const r of byName.reason.values) assert.match(reasonSpec.description, new RegExp(`\\b${r}\\b`));
    // The CLI reads the reason from the variable the pipeline sets.
    assert.equal(envName(run, 'reason', reasonSpec), 'LIFEBOAT_PIPELINE_REASON');
    assert.match(text, /\$\{\{ if eq\(variables\['Build\.Reason'\], 'Schedule'\) \}\}/);
  });

  test('stages MongoDB → PVC → cluster state → validation → notification, each a `lifeboat pipeline run`', () => {
    const stages = doc.stages as any[];
    assert.deepEqual(
      stages.map((s) => s.stage),
      ['MongoDB', 'PVC', 'ClusterState', 'Validation', 'Notification'],
    );
    const expected = [['mongodb'], ['pvc'], ['cluster-state'], ['validate'], ['notify']];
    stages.forEach((s, i) => {
      if (i > 0)
        assert.ok(
          [s.dependsOn].flat().includes(stages[i - 1].stage),
          `${s.stage} after ${stages[i - 1].stage}`,
        );
      const calls = s.jobs
        .flatMap((j: any) => j.steps.map((st: any) => st.inputs?.inlineScript ?? ''))
        .flatMap(lifeboatCalls)
        .map(checkCall)
        .filter((c: any) => c.path === 'pipeline run');
      assert.equal(calls.length, 1, `${s.stage}: one pipeline run`);
      assert.deepEqual(String(calls[0].flags.get('stages')).split(','), expected[i]);
      assert.equal(calls[0].flags.get('reason'), '$LIFEBOAT_PIPELINE_REASON');
    });
    // A layer left out of `layers` skips its stage; the layer stages still run after a failed one.
    for (const [stage, layer] of [
      ['MongoDB', 'mongodb'],
      ['PVC', 'pvc'],
      ['ClusterState', 'cluster-state'],
    ]) {
      const s = stages.find((x) => x.stage === stage);
      assert.match(s.condition, new RegExp(`containsValue\\(parameters\\.layers, '${layer}'\\)`));
    }
    assert.equal(stages.find((x) => x.stage === 'Notification').condition, 'succeeded()');
  });

  test('a failed run fails its step: strict bash, and the exit status is kept', () => {
    for (const s of scripts) {
      if (!lifeboatCalls(s).length) continue;
      assert.match(s, /set -e?uo pipefail/);
      // Without -e, the script must carry the run's status to its exit.
      if (!/set -euo pipefail/.test(s)) assert.match(s, /status=\$\?[\s\S]*exit \$status/);
    }
  });

  test("the validation report is the run's Markdown summary", () => {
    const v = (doc.stages as any[]).find((s) => s.stage === 'Validation');
    const script: string = v.jobs[0].steps.find((st: any) => st.inputs?.inlineScript).inputs.inlineScript;
    const report = lifeboatCalls(script)
      .map(checkCall)
      .find((c) => c.path === 'validate');
    assert.ok(report);
    assert.equal(report.flags.get('format'), 'markdown');
    assert.match(
      COMMANDS.find((c) => c.path.join(' ') === 'validate')!.options.format.description,
      /markdown/,
    );
    assert.match(script, /##vso\[task\.uploadsummary\]\$AGENT_TEMPDIRECTORY\/validation\.md/);
    assert.equal(v.condition, 'not(canceled())', 'validation runs after a failed layer too');
  });

  test('every lifeboat command line, including the setup template, exists in the CLI', async () => {
    const setup = YAML.parse(await readFile(SETUP, 'utf8'));
    const all = [...scripts, ...setup.steps.map((s: any) => s.bash).filter(Boolean)].flatMap(lifeboatCalls);
    assert.ok(all.length >= 7);
    for (const argv of all) {
      if (argv[0] === '--version') continue; // handled by the entry point (test/deploy/package.test.ts)
      checkCall(argv);
    }
    for (const s of (doc.stages as any[]).flatMap((x) => x.jobs.flatMap((j: any) => j.steps)))
      if (s.template) assert.equal(s.template, 'templates/lifeboat-setup.yml');
  });
});
