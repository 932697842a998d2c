/**
 * The shipped monitoring files: generated from the code and up to date, and the dashboard's every query
 * names only metrics the exporter emits (a renamed metric must not leave an empty panel behind).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { DASHBOARD_FILE, RULES_FILE, dashboardJson, rulesYaml } from '../../scripts/gen-monitoring.ts';
import { ALERT_RULES } from '../../src/observability/alerts.ts';
import { METRIC_NAMES } from '../../src/observability/metrics.ts';

/** PromQL functions, keywords and aggregations a query may name besides metrics. */
const PROMQL_WORDS = new Set([
  'time',
  'sum',
  'min',
  'max',
  'avg',
  'by',
  'without',
  'increase',
  'rate',
  'or',
  'and',
  'unless',
  'on',
  'ignoring',
  'label_values',
]);

/** Metric names in a PromQL expression: identifiers outside label matchers, strings and ranges. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\$\{?\w+\}?/g, '');
  return [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
    .map((m) => m[0])
    .filter((w, i, all) => !PROMQL_WORDS.has(w) && all.indexOf(w) === i);
}

describe('monitoring files', () => {
  test('prometheus-rules.yaml and grafana-dashboard.json are what scripts/gen-monitoring.ts writes', async () => {
    assert.equal(await readFile(RULES_FILE, 'utf8'), rulesYaml(), 'run `node scripts/gen-monitoring.ts`');
    assert.equal(
      await readFile(DASHBOARD_FILE, 'utf8'),
      dashboardJson(),
      'run `node scripts/gen-monitoring.ts`',
    );
  });

  test('every dashboard query and every alert names only metrics the exporter emits', async () => {
    const dash = JSON.parse(await readFile(DASHBOARD_FILE, 'utf8'));
    const exprs: string[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object')
        for (const [k, x] of Object.entries(v)) {
          if ((k === 'expr' || k === 'query') && typeof x === 'string') exprs.push(x);
          else walk(x);
        }
    };
    walk(dash);
    assert.ok(exprs.length >= 20, `found ${exprs.length} queries`);
    const known = new Set<string>([...METRIC_NAMES, 'ALERTS']);
    const used = new Set<string>();
    for (const e of [...exprs, ...ALERT_RULES.map((r) => r.expr)]) {
      const names = metricNames(e).filter((n) => n !== 'prometheus' && n !== 'job' && n !== 'layer');
      assert.ok(names.length > 0 || e === 'prometheus', `no metric in ${e}`);
      for (const n of names) {
        assert.ok(known.has(n), `"${e}" names ${n}, which the exporter does not emit`);
        used.add(n);
      }
    }
    // The parser finds names at all (a parser that finds nothing would pass everything).
    assert.deepEqual(
      metricNames(
        'sum by (layer) (increase(lifeboat_backup_failures_total{layer=~"$layer"}[24h])) / foo_bar',
      ),
      ['lifeboat_backup_failures_total', 'foo_bar'],
    );
    for (const section of [
      'lifeboat_backup_last_status',
      'lifeboat_repository_stored_bytes',
      'lifeboat_drill_duration_seconds',
    ])
      assert.ok(used.has(section), `the dashboard shows ${section}`);
  });
});
