/* eslint-disable @typescript-eslint/no-explicit-any -- API objects and CLI JSON are untyped here */
/**
 * `lifeboat health` (the guide's validate-cluster-health.sh) through the real CLI, against etcd +
 * kube-apiserver (test/env/kube.ts), FerretDB and a local HTTP server standing in for Rocket.Chat's
 * /api/info. No controllers run in the test cluster: `playWorkloads` (test/env/kube-controllers.ts) plays
 * the Deployment/StatefulSet controllers and the kubelet when a test wants the workloads ready.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { runCli, spawnCli, type CliResult } from '../env/cli.ts';
import { PROJECT_ROOT, tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import { admin, bindPvc, playWorkloads } from '../env/kube-controllers.ts';
import { createRocketChat } from '../env/kube-fixtures.ts';
import { startFerretDB, type MongoTestServer } from '../env/ferretdb.ts';

const NS = 'rocketchat';

describe('lifeboat health against kube-apiserver, FerretDB and an HTTP smoke test', () => {
  let kube: KubeTestCluster;
  let mongo: MongoTestServer;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let smoke: http.Server;
  let smokeUrl = '';
  let smokeUp = true;
  const cli = (args: string[]): Promise<CliResult> => runCli(args, { env });
  const failed = (r: CliResult) =>
    (r.json.checks as any[]).filter((c) => c.status === 'failed').map((c) => `${c.check} ${c.subject}`);

  before(async () => {
    work = await tempDir('lifeboat-health-');
    [kube, mongo] = await Promise.all([startKube(), startFerretDB()]);
    smoke = http.createServer((req, res) => {
      res.writeHead(smokeUp && req.url === '/api/info' ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(smokeUp ? { success: true, version: '6.12.0' } : { success: false }));
    });
    await new Promise<void>((r) => smoke.listen(0, '127.0.0.1', r));
    smokeUrl = `http://127.0.0.1:${(smoke.address() as { port: number }).port}/api/info`;
    env = {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'health test',
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
      KUBECONFIG: kube.kubeconfigPath,
    };
    await createRocketChat(kube, NS);
    await bindPvc(kube, NS, 'datadir-mongodb-0');
    assert.equal((await cli(['init'])).code, 0);
  });
  after(async () => {
    await new Promise((r) => smoke?.close(r));
    await Promise.all([kube?.stop(), mongo?.stop()]);
    await work?.cleanup();
  });

  test('workloads not rolled out yet: exit 1, each one named with its ready count', async () => {
    const r = await cli(['health', '-n', NS, '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json.ok, false);
    const f = failed(r);
    assert.ok(f.includes(`workload deployment/rocketchat -n ${NS}`), f.join('; '));
    assert.ok(f.includes(`workload statefulset/mongodb -n ${NS}`), f.join('; '));
    const pvc = r.json.checks.find((c: any) => c.check === 'pvc');
    assert.equal(pvc.status, 'ok', 'the bound claim passes');
  });

  test('everything up: workloads ready, claim bound, MongoDB and the smoke test answer, exit 0, recorded', async () => {
    await playWorkloads(kube, NS);
    const r = await cli([
      'health',
      '-n',
      NS,
      '--mongodb-uri',
      mongo.uri,
      '--smoke-test-url',
      smokeUrl,
      '--expect-field',
      'success',
      '--json',
    ]);
    assert.equal(r.code, 0, `${r.stderr} ${JSON.stringify(r.json?.checks)}`);
    assert.equal(r.json.ok, true);
    const kinds = new Set((r.json.checks as any[]).map((c) => c.check));
    for (const k of ['workload', 'pvc', 'mongodb', 'smoke-test']) assert.ok(kinds.has(k), k);
    assert.match(r.json.checks.find((c: any) => c.check === 'smoke-test').detail, /^200, version 6\.12\.0/);
    // A verifying command: one event, in the audit log.
    const audit = await cli(['audit', 'list', '--operation', 'health', '--json']);
    assert.equal(audit.code, 0, audit.stderr);
    assert.equal(audit.json.at(-1).result, 'success');
    // The human form: one row per check and a verdict.
    const human = await cli(['health', '-n', NS]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /deployment\/rocketchat -n rocketchat\s+ok/);
    assert.match(human.stdout, /^healthy: \d+ check\(s\) passed/m);
    // The guide's path for it.
    const wrapper = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(
        path.join(PROJECT_ROOT, 'scripts/lifecycle/validate-cluster-health.sh'),
        ['-n', NS, '--json'],
        { env: { ...process.env, LIFEBOAT_CONFIG: '', ...env } },
      );
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('close', (code) => resolve({ code, out }));
    });
    assert.equal(wrapper.code, 0, wrapper.out);
    assert.equal(JSON.parse(wrapper.out).ok, true);
  });

  test('a container crash-looping fails its pod, naming the reason', async () => {
    const a = admin(kube);
    const pod = await a.post(`/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'worker-1' },
      spec: { containers: [{ name: 'worker', image: 'registry.example/worker:1' }] },
    });
    pod.status = {
      phase: 'Running',
      containerStatuses: [
        {
          name: 'worker',
          ready: false,
          restartCount: 7,
          image: 'registry.example/worker:1',
          imageID: '',
          state: {
            waiting: { reason: 'CrashLoopBackOff', message: 'back-off 5m0s restarting failed container' },
          },
          lastState: {},
        },
      ],
    };
    await a.put(`/api/v1/namespaces/${NS}/pods/worker-1/status`, pod);
    try {
      const r = await cli(['health', '-n', NS, '--json']);
      assert.equal(r.code, 1);
      const check = r.json.checks.find((c: any) => c.subject === `pod/worker-1 -n ${NS}`);
      assert.equal(check.status, 'failed');
      assert.match(check.detail, /container worker: CrashLoopBackOff/);
      assert.deepEqual(failed(r), [`pod pod/worker-1 -n ${NS}`], 'only the stuck pod fails');
    } finally {
      await a.del(`/api/v1/namespaces/${NS}/pods/worker-1?gracePeriodSeconds=0`);
    }
  });

  test('--wait: a rollout that finishes while it looks passes; one that does not fails when the time is up', async () => {
    const a = admin(kube);
    // A new spec: the controller has not seen it until playWorkloads runs.
    await a.patch(`/apis/apps/v1/namespaces/${NS}/deployments/rocketchat`, {
      spec: { template: { metadata: { annotations: { restartedAt: new Date().toISOString() } } } },
    });
    const stillRollingOut = await cli(['health', '-n', NS, '--wait', '1', '--poll-ms', '200', '--json']);
    assert.equal(stillRollingOut.code, 1);
    assert.ok(stillRollingOut.json.rounds > 1, 'it looked more than once');
    assert.match(
      stillRollingOut.json.checks.find((c: any) => c.subject === `deployment/rocketchat -n ${NS}`).detail,
      /has not seen the latest spec/,
    );
    // The controller catches up once the command has looked and said what it waits for.
    const child = spawnCli(['health', '-n', NS, '--wait', '60', '--poll-ms', '200', '--json'], { env });
    let stdout = '';
    let stderr = '';
    const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    child.stdout!.on('data', (d) => (stdout += d));
    const waiting = new Promise<void>((resolve) =>
      child.stderr!.on('data', (d) => {
        stderr += d;
        if (/waiting up to \d+ s more for deployment\/rocketchat/.test(stderr)) resolve();
      }),
    );
    await Promise.race([waiting, exited]);
    await playWorkloads(kube, NS);
    assert.equal(await exited, 0, stderr);
    const r = JSON.parse(stdout);
    assert.equal(r.ok, true, JSON.stringify(r.checks));
    assert.ok(r.rounds > 1, 'it looked again after the rollout finished');
  });

  test('unreachable MongoDB, a failing smoke test, a missing namespace: each its own failed check, one line each', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    smokeUp = false;
    try {
      const r = await cli([
        'health',
        '-n',
        NS,
        '-n',
        'nothing-here',
        '--mongodb-uri',
        `mongodb://127.0.0.1:${port}/`,
        '--smoke-test-url',
        smokeUrl,
        '--json',
      ]);
      assert.equal(r.code, 1);
      assert.deepEqual(failed(r).sort(), [
        `mongodb mongodb://127.0.0.1:${port}/`,
        'namespace nothing-here',
        `smoke-test ${smokeUrl}`,
      ]);
      for (const c of r.json.checks as any[]) assert.ok(!c.detail.includes('\n'), `${c.check}: one line`);
      assert.match(r.json.checks.find((c: any) => c.check === 'smoke-test').detail, /answered 503/);
      const human = await cli(['health', '-n', 'nothing-here']);
      assert.equal(human.code, 1);
      assert.match(human.stdout, /^NOT healthy: 1 of 1 check\(s\) failed/m);
    } finally {
      smokeUp = true;
    }
  });

  test('nothing to check is a usage error (exit 2)', async () => {
    const r = await cli(['health']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nothing to check/);
    assert.equal(r.stderr.trim().split('\n').length <= 2, true, r.stderr);
  });
});
