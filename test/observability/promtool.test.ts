/**
 * The shipped rules and the exporter, checked with the real Prometheus tool (promtool, built from the Go
 * module proxy by scripts/tools/promtool.ts):
 * - `promtool check metrics` on the exporter's real output (healthy, failing and unreachable repositories);
 * - `promtool check rules` on the `spec` of deploy/monitoring/prometheus-rules.yaml (a PrometheusRule:
 *   promtool reads plain rule files, so the groups are extracted into a temporary file);
 * - `promtool test rules`: every alert, in every scenario, fed with the series the exporter produced for
 *   that scenario in this test, must fire exactly with the expected labels and annotations.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { ensureTool } from '../../scripts/tools/toolbox.ts';
import { promtool } from '../../scripts/tools/promtool.ts';
import { ALERT_RULES, RUNBOOK_BASE } from '../../src/observability/alerts.ts';
import { PROJECT_ROOT, tempDir, type TempDir } from '../env/index.ts';
import { runCli } from '../env/cli.ts';
import { cliEnv, downRepo, failingRepo, healthyRepo, type Scenario } from './fixture.ts';

function run(bin: string, args: string[], input?: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(input ?? '');
  });
}

/** `name{a="b"} 1.5` lines of exposition text → promtool input series. */
function inputSeries(text: string): { series: string; value: string }[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const at = l.lastIndexOf(' ');
      return { series: l.slice(0, at), value: l.slice(at + 1) };
    });
}

/** `{{ $labels.x }}` as Prometheus renders it (our annotations use no other template feature). */
const render = (t: string, labels: Record<string, string>) =>
  t.replace(/\{\{\s*\$labels\.(\w+)\s*\}\}/g, (_, k: string) => labels[k] ?? '');

describe('promtool', () => {
  let tmp: TempDir;
  let bin: string;
  const outputs = new Map<string, { scenario: Scenario; text: string }>();
  before(async () => {
    bin = path.join(await ensureTool(promtool), 'bin', 'promtool');
    tmp = await tempDir('lifeboat-promtool-');
    for (const s of [
      await healthyRepo(path.join(tmp.path, 'healthy')),
      await failingRepo(path.join(tmp.path, 'failing')),
      downRepo(tmp.path),
    ]) {
      const r = await runCli(['metrics', ...(s.quota ? ['--storage-quota', s.quota] : [])], {
        env: cliEnv(s.repo),
      });
      assert.equal(r.code, s.name === 'down' ? 1 : 0, r.stderr);
      outputs.set(s.name, { scenario: s, text: r.stdout });
    }
  });
  after(() => tmp.cleanup());

  test('promtool check metrics passes on the exporter output', async () => {
    for (const [name, { text }] of outputs) {
      const r = await run(bin, ['check', 'metrics'], text);
      assert.equal(r.code, 0, `${name}: ${r.out}`);
      assert.equal(r.out.trim(), '', `${name}: promtool lint findings: ${r.out}`);
    }
    // The check can fail: a counter without _total is reported.
    const bad = await run(
      bin,
      ['check', 'metrics'],
      '# HELP lifeboat_x x\n# TYPE lifeboat_x counter\nlifeboat_x 1\n',
    );
    assert.notEqual(bad.out.trim(), '');
  });

  test('promtool check rules and test rules: every alert against the series the exporter produced', async () => {
    const rule = parse(
      await readFile(path.join(PROJECT_ROOT, 'deploy/monitoring/prometheus-rules.yaml'), 'utf8'),
    );
    assert.equal(rule.kind, 'PrometheusRule');
    const rulesFile = path.join(tmp.path, 'rules.yaml');
    await writeFile(rulesFile, stringify({ groups: rule.spec.groups }));
    const check = await run(bin, ['check', 'rules', rulesFile]);
    assert.equal(check.code, 0, check.out);
    assert.match(check.out, new RegExp(`SUCCESS: ${ALERT_RULES.length} rules found`));

    const rules = rule.spec.groups.flatMap((g: { rules: unknown[] }) => g.rules) as {
      alert: string;
      labels: Record<string, string>;
      annotations: Record<string, string>;
    }[];
    const tests = [];
    for (const [name, { scenario, text }] of outputs) {
      const generated = Number(/^lifeboat_metrics_generated_timestamp_seconds (\S+)$/m.exec(text)![1]);
      const series = inputSeries(text).map((s) => ({
        series: s.series,
        // One sample a minute for an hour, as a scrape of the same textfile would give.
        values: s.value === '+Inf' ? Array(61).fill('Inf').join(' ') : `${s.value}x60`,
      }));
      tests.push({
        name,
        interval: '1m',
        start_timestamp: Math.floor(generated),
        input_series: series,
        // 40 min in: past every `for:` (the longest is 30 min).
        alert_rule_test: rules.map((r) => ({
          eval_time: '40m',
          alertname: r.alert,
          exp_alerts: scenario.expected
            .filter((e) => e.alert === r.alert)
            .map((e) => ({
              exp_labels: { ...r.labels, ...e.labels },
              exp_annotations: Object.fromEntries(
                Object.entries(r.annotations).map(([k, v]) => [k, render(v, e.labels)]),
              ),
            })),
        })),
      });
    }
    const testFile = path.join(tmp.path, 'rules.test.yaml');
    await writeFile(testFile, stringify({ rule_files: [rulesFile], evaluation_interval: '1m', tests }));
    const r = await run(bin, ['test', 'rules', testFile]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS/);
    // Every alert fires in some scenario (a test that never fires an alert proves nothing of it).
    const fired = new Set([...outputs.values()].flatMap((o) => o.scenario.expected.map((e) => e.alert)));
    assert.deepEqual([...fired].sort(), ALERT_RULES.map((a) => a.alert).sort());

    // And the test can fail: expecting the healthy scenario to fire an alert is reported.
    tests[0].alert_rule_test[0].exp_alerts = [{ exp_labels: { severity: 'critical' }, exp_annotations: {} }];
    await writeFile(
      testFile,
      stringify({ rule_files: [rulesFile], evaluation_interval: '1m', tests: [tests[0]] }),
    );
    assert.notEqual((await run(bin, ['test', 'rules', testFile])).code, 0);
  });

  test('every runbook_url names a heading of docs/runbooks.md', async () => {
    const md = await readFile(path.join(PROJECT_ROOT, 'docs/runbooks.md'), 'utf8');
    const anchors = new Set(
      [...md.matchAll(/^#+ (.+)$/gm)].map((m) =>
        m[1]
          .trim()
          .toLowerCase()
          .replace(/[^\w\- ]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    for (const r of ALERT_RULES)
      assert.ok(
        anchors.has(r.runbook),
        `docs/runbooks.md has no heading for #${r.runbook} (${RUNBOOK_BASE})`,
      );
  });
});
