/**
 * The exporter against real repositories through the real CLI: values per layer, the TypeScript alert
 * evaluation, the same output after a "restart", textfile and Pushgateway delivery (a local HTTP receiver
 * checks method, path and body), `lifeboat serve` (/metrics, /healthz, read-only, SIGTERM) and bad input.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { freePort, tempDir, waitForPort, type TempDir } from '../env/index.ts';
import { runCli, spawnCli } from '../env/cli.ts';
import { firingAlerts } from '../../src/observability/alerts.ts';
import type { MetricFamily } from '../../src/observability/prom-text.ts';
import { cliEnv, downRepo, failingRepo, healthyRepo, type Scenario } from './fixture.ts';

/** Families back from `--json` (non-finite values as text). */
function families(json: {
  families: { name: string; samples: { labels: Record<string, string>; value: number | string }[] }[];
}) {
  return json.families.map((f) => ({
    ...f,
    samples: f.samples.map((s) => ({
      labels: s.labels,
      value: typeof s.value === 'string' ? Number(s.value.replace('+Inf', 'Infinity')) : s.value,
    })),
  })) as MetricFamily[];
}

function value(fams: MetricFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  return fams
    .find((f) => f.name === name)
    ?.samples.find(
      (s) =>
        JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort()),
    )?.value;
}

const sortAlerts = (a: { alert: string; labels: Record<string, string> }[]) =>
  a.map((x) => `${x.alert}${JSON.stringify(Object.entries(x.labels).sort())}`).sort();

describe('lifeboat metrics', () => {
  let tmp: TempDir;
  let healthy: Scenario;
  let failing: Scenario;
  before(async () => {
    tmp = await tempDir('lifeboat-metrics-');
    healthy = await healthyRepo(path.join(tmp.path, 'healthy'));
    failing = await failingRepo(path.join(tmp.path, 'failing'));
  });
  after(() => tmp.cleanup());

  const metrics = (s: Scenario, extra: string[] = []) =>
    runCli(['metrics', '--json', ...(s.quota ? ['--storage-quota', s.quota] : []), ...extra], {
      env: cliEnv(s.repo),
    });

  test('a healthy repository: per-layer values from its snapshots and records, and no alert', async () => {
    const r = await metrics(healthy);
    assert.equal(r.code, 0, r.stderr);
    const f = families(r.json);
    assert.equal(value(f, 'lifeboat_repository_up'), 1);
    assert.equal(value(f, 'lifeboat_backup_last_status', { layer: 'mongodb' }), 1);
    assert.equal(value(f, 'lifeboat_snapshots', { layer: 'mongodb' }), 4);
    const last = value(f, 'lifeboat_backup_last_success_timestamp_seconds', { layer: 'mongodb' })!;
    assert.ok(Math.abs(Date.now() / 1000 - last) < 600, `newest mongodb backup is recent (${last})`);
    assert.equal(value(f, 'lifeboat_backup_last_processed_bytes', { layer: 'mongodb' }), 4000);
    assert.ok(value(f, 'lifeboat_backup_last_added_bytes', { layer: 'mongodb' })! > 0);
    assert.equal(value(f, 'lifeboat_restore_point_verified_timestamp_seconds', { layer: 'mongodb' }), last);
    assert.equal(value(f, 'lifeboat_drill_last_status'), 1);
    assert.equal(value(f, 'lifeboat_drill_duration_seconds'), 660);
    assert.equal(value(f, 'lifeboat_drill_budget_seconds'), 7200);
    assert.equal(value(f, 'lifeboat_drill_layer_duration_seconds', { layer: 'mongodb' }), 600);
    assert.equal(value(f, 'lifeboat_drill_layer_budget_seconds', { layer: 'mongodb' }), 3600);
    assert.equal(value(f, 'lifeboat_recovery_last_status'), 1);
    assert.equal(value(f, 'lifeboat_integrity_errors', { source: 'check' }), 0);
    assert.equal(value(f, 'lifeboat_storage_quota_bytes'), 1024 ** 4);
    assert.ok(
      value(f, 'lifeboat_repository_stored_bytes')! >=
        value(f, 'lifeboat_layer_stored_bytes', { layer: 'files' })!,
    );
    assert.deepEqual(firingAlerts(f, Date.now() / 1000), []);
  });

  test('a failing repository: failures seen from audit and run records, the TypeScript alerts fire as expected', async () => {
    const r = await metrics(failing);
    assert.equal(r.code, 0, r.stderr);
    const f = families(r.json);
    assert.equal(value(f, 'lifeboat_backup_last_status', { layer: 'files' }), 0);
    assert.equal(value(f, 'lifeboat_backup_failures_total', { layer: 'files' }), 1);
    assert.equal(value(f, 'lifeboat_backup_last_status', { layer: 'mongodb' }), 1);
    // The pre-restore snapshot taken now is not a backup: the newest mongodb backup is 30 h old.
    const age =
      Date.now() / 1000 - value(f, 'lifeboat_backup_last_success_timestamp_seconds', { layer: 'mongodb' })!;
    assert.ok(age > 29.9 * 3600 && age < 31 * 3600, `age ${age}`);
    assert.equal(value(f, 'lifeboat_integrity_errors', { source: 'check' }), 2);
    assert.equal(value(f, 'lifeboat_integrity_errors', { source: 'drill' }), 1);
    assert.equal(value(f, 'lifeboat_drill_layer_status', { layer: 'files' }), 0);
    assert.ok(value(f, 'lifeboat_storage_time_to_quota_seconds')! < 7 * 86400);
    assert.deepEqual(sortAlerts(firingAlerts(f, Date.now() / 1000)), sortAlerts(failing.expected));
  });

  test('an unreachable repository: up 0 with its error code, exit 1, the alert fires', async () => {
    const down = downRepo(tmp.path);
    const r = await metrics(down);
    assert.equal(r.code, 1);
    const f = families(r.json);
    assert.equal(value(f, 'lifeboat_repository_up', { error: 'NO_REPOSITORY' }), 0);
    assert.deepEqual(sortAlerts(firingAlerts(f, Date.now() / 1000)), sortAlerts(down.expected));
  });

  test('computed from the repository: a second run (a restarted exporter) reports the same values', async () => {
    // These depend on when they are computed (now minus a stored time), not only on the repository.
    const strip = (t: string) =>
      t.replace(
        /^lifeboat_(metrics_generated_timestamp_seconds|storage_time_to_quota_seconds|storage_growth_bytes_per_second|pitr_lag_seconds)[ {].*$/gm,
        '',
      );
    const a = await runCli(['metrics', '--storage-quota', '1TiB'], { env: cliEnv(failing.repo) });
    const b = await runCli(['metrics', '--storage-quota', '1TiB'], { env: cliEnv(failing.repo) });
    assert.equal(a.code, 0, a.stderr);
    assert.ok(a.stdout.includes('lifeboat_backup_last_status{layer="files"} 0'));
    assert.equal(strip(b.stdout), strip(a.stdout));
  });

  test('--textfile: written atomically (no temporary file left), readable by node-exporter (0644)', async () => {
    const dir = path.join(tmp.path, 'textfile');
    await import('node:fs/promises').then((fs) => fs.mkdir(dir));
    const file = path.join(dir, 'lifeboat.prom');
    const r = await runCli(['metrics', '--textfile', file], { env: cliEnv(healthy.repo) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /metrics written to/);
    const text = await readFile(file, 'utf8');
    assert.match(text, /^# HELP lifeboat_repository_up /m);
    assert.match(text, /^lifeboat_backup_last_status\{layer="mongodb"\} 1$/m);
    assert.equal((await stat(file)).mode & 0o777, 0o644);
    assert.deepEqual(await readdir(dir), ['lifeboat.prom']);
    const bad = await runCli(['metrics', '--textfile', path.join(dir, 'lifeboat.txt')], {
      env: cliEnv(healthy.repo),
    });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /must end in \.prom/);
  });

  test('--push: push-add (POST) to /metrics/job/lifeboat/instance/<repository id>, also when the key is wrong', async () => {
    const received: { method?: string; url?: string; type?: string; body: string }[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        received.push({ method: req.method, url: req.url, type: req.headers['content-type'], body });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const ok = await runCli(['metrics', '--json', '--push', url], { env: cliEnv(healthy.repo) });
      assert.equal(ok.code, 0, ok.stderr);
      const id = families(ok.json).find((f) => f.name === 'lifeboat_repository_info')!.samples[0].labels
        .repository_id;
      assert.match(id, /^[0-9a-f]{64}$/);
      assert.equal(received.length, 1);
      assert.equal(received[0].method, 'POST');
      assert.equal(received[0].url, `/metrics/job/lifeboat/instance/${id}`);
      assert.match(received[0].type!, /^text\/plain; version=0\.0\.4/);
      assert.match(received[0].body, /^lifeboat_repository_up 1$/m);

      // A failed run pushes up 0 into the same group: push-add replaces only the families it sends.
      const wrong = await runCli(['metrics', '--push', url], {
        env: { ...cliEnv(healthy.repo), LIFEBOAT_PASSWORD: 'not-the-password' },
      });
      assert.equal(wrong.code, 1);
      assert.equal(received.length, 2);
      assert.equal(received[1].method, 'POST');
      assert.equal(received[1].url, `/metrics/job/lifeboat/instance/${id}`);
      assert.match(received[1].body, /^lifeboat_repository_up\{error="WRONG_KEY"\} 0$/m);
      assert.doesNotMatch(received[1].body, /lifeboat_backup_last_success_timestamp_seconds/);
      assert.doesNotMatch(received[1].body, /not-the-password|metrics-test-pw/);
    } finally {
      server.close();
    }
    const refused = await runCli(['metrics', '--push', `http://127.0.0.1:${await freePort()}`], {
      env: cliEnv(healthy.repo),
    });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot push metrics to http:\/\/127\.0\.0\.1:\d+.* — check --push/);
    const badUrl = await runCli(['metrics', '--push', 'pushgateway:9091'], { env: cliEnv(healthy.repo) });
    assert.equal(badUrl.code, 2);
    assert.equal(badUrl.stderr.trim().split('\n').length, 1);
    const badQuota = await runCli(['metrics', '--storage-quota', 'lots'], { env: cliEnv(healthy.repo) });
    assert.equal(badQuota.code, 2);
    assert.match(badQuota.stderr, /storage-quota.* must be a size such as 500GiB/);
  });

  test('lifeboat serve: /metrics, /healthz, read-only, cached between scrapes, stops on SIGTERM', async () => {
    const port = await freePort();
    const child = spawnCli(['serve', '--listen', `127.0.0.1:${port}`, '--cache-seconds', '3600'], {
      env: cliEnv(healthy.repo),
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    try {
      await waitForPort(port);
      const base = `http://127.0.0.1:${port}`;
      const m = await fetch(`${base}/metrics`);
      assert.equal(m.status, 200);
      assert.match(m.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
      const text = await m.text();
      assert.match(text, /^lifeboat_repository_up 1$/m);
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
      assert.equal((await fetch(`${base}/nope`)).status, 404);
      const page = await fetch(`${base}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<h1>Lifeboat status<\/h1>/);
      // Cached: the same text (generation time included) on the next scrape.
      assert.equal(await (await fetch(`${base}/metrics`)).text(), text);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    } finally {
      child.kill('SIGKILL');
    }
    const busy = http.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const r = await runCli(['serve', '--listen', `127.0.0.1:${(busy.address() as AddressInfo).port}`], {
        env: cliEnv(healthy.repo),
      });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /EADDRINUSE.*choose another --listen/);
    } finally {
      busy.close();
    }
  });
});
