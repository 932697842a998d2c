/* eslint-disable @typescript-eslint/no-explicit-any -- CLI JSON and API objects are untyped here */
/**
 * `lifeboat pipeline run | status | history` through the real CLI against real peers: FerretDB (MongoDB
 * wire), etcd + kube-apiserver with the CSI snapshot CRDs (this file plays the snapshot controller, as
 * test/kubernetes/pvc.test.ts does: it marks VolumeSnapshots ready, or holds them back to keep a run
 * inside its pvc stage), the test Key Vault (a fake over real HTTPS, test/env/keyvault.ts), a Terraform
 * working directory and a local repository. Kubernetes access is the shipped least-privilege
 * ServiceAccount (deploy/rbac). Also server-side applies deploy/kubernetes/pipeline-cronjob.yaml.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import YAML from 'yaml';
import { MongoClient } from 'mongodb';
import { runCli, spawnCli, type CliResult } from '../env/cli.ts';
import { freePort, PROJECT_ROOT, tempDir, type TempDir } from '../env/index.ts';
import { startMongo, type MongoTestServer } from '../env/ferretdb.ts';
import { rawRequest, startKube, type KubeTestCluster } from '../env/kube.ts';
import {
  admin,
  bindPvc,
  controllerLoop,
  setSnapshotStatus,
  type ControllerLoop,
} from '../env/kube-controllers.ts';
import { asShippedServiceAccount, createRocketChat, createAzureDiskClasses } from '../env/kube-fixtures.ts';
import { startKeyVault, VALID_TOKEN, type TestKeyVault } from '../env/keyvault.ts';
import { generateSample } from '../../src/sources/mongodb/sample-data.ts';

const NS = 'rocketchat';
const VS = `/apis/snapshot.storage.k8s.io/v1/namespaces/${NS}/volumesnapshots`;
const HEX64 = /^[0-9a-f]{64}$/;

function stateV4(lineage: string, serial: number): string {
  return JSON.stringify({
    version: 4,
    terraform_version: '1.10.6',
    serial,
    lineage,
    outputs: {},
    resources: [],
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

function collect(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdin!.end();
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code, signal, stdout, stderr, json });
    }),
  );
}

describe('pipeline run against MongoDB, Kubernetes, Key Vault and Terraform state', () => {
  let mongo: MongoTestServer;
  let kube: KubeTestCluster;
  let kv: TestKeyVault;
  let work: TempDir;
  let loop: ControllerLoop;
  let env: NodeJS.ProcessEnv;
  let base: Record<string, unknown>;
  let snapshotMode: 'ready' | 'never' = 'ready';
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(args, { env: { ...env, ...extra } });
  const withConfig = async (name: string, pipeline: unknown): Promise<string> => {
    const file = path.join(work.path, name);
    await writeFile(file, YAML.stringify({ ...base, pipeline }));
    return file;
  };
  const counts = async (): Promise<Record<string, number>> => {
    const r = await cli(['snapshots', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out: Record<string, number> = {};
    for (const s of r.json) out[s.type] = (out[s.type] ?? 0) + 1;
    return out;
  };

  before(async () => {
    work = await tempDir('lifeboat-pipeline-');
    [mongo, kube, kv] = await Promise.all([startMongo(), startKube(), startKeyVault()]);
    const client = new MongoClient(mongo.uri);
    await client.connect();
    await client.db('rocketchat').dropDatabase();
    await generateSample(client, {
      db: 'rocketchat',
      users: 20,
      rooms: 3,
      messages: 400,
      uploads: 2,
      seed: 12,
    });
    await client.close();

    await createRocketChat(kube, NS);
    await createAzureDiskClasses(kube);
    await bindPvc(kube, NS, 'datadir-mongodb-0');
    // The CSI snapshot controller, played: ready at once, or (mode `never`) not until the mode changes.
    loop = controllerLoop(async () => {
      if (snapshotMode === 'never') return;
      for (const vs of (await admin(kube).get(VS)).body.items ?? [])
        if (!vs.status?.readyToUse)
          await setSnapshotStatus(kube, NS, vs.metadata.name, { readyToUse: true, restoreSize: '1Gi' });
    });
    const kubeconfig = await asShippedServiceAccount(kube, path.join(work.path, 'kubeconfig'), NS);

    const tf = path.join(work.path, 'tf');
    await mkdir(tf);
    await writeFile(path.join(tf, 'terraform.tfstate'), stateV4(randomUUID(), 3));

    base = {
      mongodb: { uri: mongo.uri, backup: { 'ns-include': ['rocketchat.*'] } },
      pvc: { snapshot: { namespace: NS, 'poll-ms': 100 } },
      'cluster-state': { backup: { namespace: NS } },
      secrets: { vault: kv.url, backup: { namespace: NS } },
      terraform: { backup: { dir: tf } },
    };
    env = {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'pipeline test passphrase',
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
      KUBECONFIG: kubeconfig,
      NODE_EXTRA_CA_CERTS: kv.tls.caFile,
      LIFEBOAT_SECRETS_VAULT_TOKEN: VALID_TOKEN,
      LIFEBOAT_CONFIG: await withConfig('lifeboat.yaml', undefined),
    };
    const init = await cli(['init']);
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await loop?.stop().catch(() => {});
    await kube?.stop();
    await kv?.close();
    await mongo?.stop();
    await work?.cleanup();
  });

  let firstRun: any;
  test('a full run: every default stage, a snapshot per repository layer, the record and the run event', async () => {
    const r = await cli(['pipeline', 'run', '--reason', 'schedule', '--json', '--verbose'], {
      LIFEBOAT_LOG_FORMAT: 'json',
    });
    assert.equal(r.code, 0, r.stderr);
    const run = r.json.run;
    firstRun = run;
    assert.equal(run.status, 'success');
    assert.equal(run.reason, 'schedule');
    assert.equal(run.settings.slot, 'daily');
    const byName = Object.fromEntries(run.steps.map((s: any) => [s.name, s]));
    assert.deepEqual(
      run.steps.map((s: any) => [s.name, s.status]),
      [
        ['mongodb', 'success'],
        ['pvc', 'success'],
        ['cluster-state', 'success'],
        ['secrets', 'success'],
        ['terraform', 'success'],
        ['copy', 'skipped'],
        ['retention', 'success'],
        ['validate', 'success'],
        ['notify', 'success'],
      ],
    );
    // No second location configured: the default copy stage says why it did nothing.
    assert.match(byName.copy.reason, /no second location configured \(copy\.to/);
    const snapshots = (await cli(['snapshots', '--json'])).json;
    for (const [stage, type] of [
      ['mongodb', 'mongodb'],
      ['pvc', 'pvc-snapshots'],
      ['cluster-state', 'cluster-state'],
      ['terraform', 'terraform'],
    ]) {
      assert.match(byName[stage].snapshot, HEX64, `${stage} snapshot id`);
      assert.equal(snapshots.find((s: any) => s.id === byName[stage].snapshot)?.type, type, stage);
      assert.equal(byName[stage].attempts, 1);
      assert.ok(byName[stage].budgetMs > 0);
    }
    assert.equal(byName.secrets.snapshot, undefined, 'secrets go to Key Vault, not the repository');
    assert.equal(byName.secrets.summary.conflicts, 0);
    assert.ok(kv.versionCount() > 0, 'the secrets stage wrote to the vault');
    // Retention used mongodb backup's own policy (retention-days 7) for the mongodb layer only.
    assert.equal(byName.retention.summary.layers, 'mongodb');
    assert.equal(byName.retention.summary.removed, 0);
    assert.equal(byName.validate.summary.ok, true);

    // The one `pipeline run` event the notify stage emits (logged with --verbose as JSON lines).
    const events = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .filter((l) => l.msg === 'event' && l.event?.operation === 'pipeline run')
      .map((l) => l.event);
    assert.equal(events.length, 1, r.stderr);
    assert.equal(events[0].result, 'success');
    assert.equal(events[0].effect, 'change');
    assert.equal(events[0].runId, run.id);
    assert.equal(events[0].details.success, 7);
    assert.equal(events[0].details.reason, 'schedule');

    const status = await cli(['pipeline', 'status', '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(status.json.run, run);
    assert.equal(status.json.status, 'success');
    assert.equal(status.json.resume, undefined);
    const human = await cli(['pipeline', 'status']);
    assert.match(human.stdout, /^mongodb\s+success\s+\S+.*\s60 min\s+[0-9a-f]{8}/m);

    const history = await cli(['pipeline', 'history', '--json']);
    assert.deepEqual(
      history.json.map((h: any) => [h.id, h.status, h.reason]),
      [[run.id, 'success', 'schedule']],
    );
  });

  test('a run SIGKILLed inside its pvc stage shows as killed; --resume last does not repeat finished stages', async () => {
    const before = await counts();
    snapshotMode = 'never';
    const child = spawnCli(['pipeline', 'run', '--json'], { env });
    const done = collect(child);
    const id = await until('the run reaching its pvc stage', async () => {
      const s = await cli(['pipeline', 'status', '--json']);
      const run = s.json?.run;
      return run &&
        run.id !== firstRun.id &&
        run.steps.find((x: any) => x.name === 'pvc')?.status === 'running'
        ? (run.id as string)
        : undefined;
    });
    child.kill('SIGKILL');
    assert.equal((await done).signal, 'SIGKILL');

    const killed = await cli(['pipeline', 'status', '--json']);
    assert.equal(killed.json.run.id, id);
    assert.equal(killed.json.run.status, 'running', 'the record was left as it was');
    assert.equal(killed.json.status, 'interrupted (killed)');
    assert.equal(killed.json.resume, `lifeboat pipeline run --resume ${id}`);
    const killedHuman = await cli(['pipeline', 'status', id]);
    assert.match(killedHuman.stdout, /interrupted \(killed\)/);
    assert.match(killedHuman.stdout, /^pvc\s+interrupted/m);
    assert.match(killedHuman.stdout, /lifeboat pipeline run --resume /);
    const history = await cli(['pipeline', 'history', '--json']);
    assert.equal(history.json[0].status, 'interrupted (killed)');

    snapshotMode = 'ready';
    const resumed = await cli(['pipeline', 'run', '--resume', 'last', '--json']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const run = resumed.json.run;
    assert.equal(run.id, id);
    assert.equal(run.status, 'success');
    assert.equal(run.resumes.length, 1);
    const attempts = Object.fromEntries(run.steps.map((s: any) => [s.name, s.attempts]));
    assert.deepEqual(attempts, {
      mongodb: 1,
      pvc: 2,
      'cluster-state': 1,
      secrets: 1,
      terraform: 1,
      copy: undefined, // skipped: no second location configured
      retention: 1,
      validate: 1,
      notify: 1,
    });
    // One new snapshot per layer: the mongodb backup of the killed run counts, and was not taken again.
    const after = await counts();
    for (const type of ['mongodb', 'pvc-snapshots', 'cluster-state', 'terraform'])
      assert.equal(after[type], before[type] + 1, type);

    const again = await cli(['pipeline', 'run', '--resume', id]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /finished \(success\): nothing to resume/);
  });

  test('SIGTERM inside a stage: exit 143, the run recorded interrupted, the interruption reported', async () => {
    snapshotMode = 'never';
    const child = spawnCli(['pipeline', 'run', '--stages', 'mongodb,pvc,notify', '--json', '--verbose'], {
      env: { ...env, LIFEBOAT_LOG_FORMAT: 'json' },
    });
    const done = collect(child);
    const id = await until('the run reaching its pvc stage', async () => {
      const s = await cli(['pipeline', 'status', '--json']);
      const run = s.json?.run;
      return run?.status === 'running' && run.steps.find((x: any) => x.name === 'pvc')?.status === 'running'
        ? (run.id as string)
        : undefined;
    });
    child.kill('SIGTERM');
    const r = await done;
    snapshotMode = 'ready';
    assert.equal(r.code, 143, r.stderr);
    assert.equal(r.json.run.id, id);
    assert.equal(r.json.run.status, 'interrupted');
    assert.deepEqual(
      r.json.run.steps.map((s: any) => [s.name, s.status]),
      [
        ['mongodb', 'success'],
        ['pvc', 'interrupted'],
        ['notify', 'not-run'],
      ],
    );
    assert.equal(r.json.run.steps[1].error.code, 'INTERRUPTED');
    const event = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .find((l) => l.msg === 'event' && l.event?.operation === 'pipeline run')?.event;
    assert.equal(event?.result, 'interrupted', r.stderr);
    assert.equal(event.exitCode, 143);
    const status = await cli(['pipeline', 'status', '--json']);
    assert.equal(status.json.status, 'interrupted', 'stopped cleanly, not killed');
    assert.equal(status.json.resume, `lifeboat pipeline run --resume ${id}`);
  });

  test('two runs started at once: one runs, the other exits 4 naming the holder', async () => {
    snapshotMode = 'never'; // the winner waits in its pvc stage until the loser has given up
    const children = [0, 1].map(() => spawnCli(['pipeline', 'run', '--stages', 'pvc', '--json'], { env }));
    const results = children.map(collect);
    const first = await Promise.race(results.map((p, i) => p.then((r) => ({ r, i }))));
    const loser = first.r;
    const winner = children[1 - first.i];
    assert.equal(loser.code, 4, loser.stderr);
    assert.equal(loser.json.error.code, 'BUSY');
    assert.match(
      loser.json.error.message,
      /^pipeline-daily is held by pipeline run \S+ \(pid \d+ on \S+, lock pipeline-daily, since /,
    );
    assert.equal(loser.json.error.holder.pid, winner.pid);
    assert.match(loser.stderr, /lifeboat: pipeline-daily is held by/);
    snapshotMode = 'ready';
    const won = await results[1 - first.i];
    assert.equal(won.code, 0, won.stderr);
    assert.equal(won.json.run.status, 'success');
    assert.deepEqual(won.json.run.settings.stages, ['pvc']);
    assert.deepEqual(
      won.json.run.steps.map((s: any) => s.name),
      ['pvc'],
    );
  });

  test('a failing stage with on-failure continue makes the run partial (exit 1, the stage named)', async () => {
    const closed = await freePort();
    const config = await withConfig('partial.yaml', {
      stages: [
        {
          name: 'broken',
          command: 'mongodb backup',
          options: { uri: `mongodb://127.0.0.1:${closed}/`, 'server-timeout': 1 },
          'on-failure': 'continue',
        },
        { name: 'terraform' },
        { name: 'notify' },
      ],
    });
    const r = await cli(['pipeline', 'run', '--json'], { LIFEBOAT_CONFIG: config });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json.run.status, 'partial');
    assert.deepEqual(
      r.json.run.steps.map((s: any) => [s.name, s.status]),
      [
        ['broken', 'failure'],
        ['terraform', 'success'],
        ['notify', 'success'],
      ],
    );
    assert.equal(r.json.run.steps[0].error.code, 'UNREACHABLE');
    assert.match(r.stderr, /partial: stage broken: /);
    const human = await cli(['pipeline', 'status'], { LIFEBOAT_CONFIG: config });
    assert.match(human.stdout, /^broken\s+failure\s.*UNREACHABLE/m);
    assert.match(human.stdout, /--resume /);

    const stop = await withConfig('stop.yaml', {
      stages: [
        {
          name: 'broken',
          command: 'mongodb backup',
          options: { uri: `mongodb://127.0.0.1:${closed}/`, 'server-timeout': 1 },
          'on-failure': 'stop',
        },
        { name: 'terraform' },
        { name: 'notify' },
      ],
    });
    const stopped = await cli(['pipeline', 'run', '--json'], { LIFEBOAT_CONFIG: stop });
    assert.equal(stopped.code, 1, stopped.stderr);
    assert.equal(stopped.json.run.status, 'failure');
    assert.deepEqual(
      stopped.json.run.steps.map((s: any) => s.status),
      ['failure', 'not-run', 'success'],
      'notify still reports the failure',
    );
    assert.equal(stopped.json.run.steps[2].summary.result, 'failure');
  });

  test('a stage that runs out of its budget is stopped and fails with TIMEOUT', async () => {
    snapshotMode = 'never';
    const config = await withConfig('budget.yaml', { stages: [{ name: 'pvc', budget: '2s' }] });
    const r = await cli(['pipeline', 'run', '--json'], { LIFEBOAT_CONFIG: config });
    snapshotMode = 'ready';
    assert.equal(r.code, 1, r.stderr);
    const step = r.json.run.steps[0];
    assert.equal(step.status, 'failure');
    assert.equal(step.budgetMs, 2000);
    assert.equal(step.error.code, 'TIMEOUT');
    assert.match(step.error.message, /pvc ran out of its budget of 2 s/);
  });

  test('a bad pipeline.stages entry is a config error (exit 2) naming its path', async () => {
    const cases: [unknown, RegExp][] = [
      [
        { stages: [{ name: 'mongodb', 'on-failure': 'maybe' }] },
        /pipeline\.stages\[0\]\.on-failure: must be equal to one of the allowed values \(stop, continue\)/,
      ],
      [
        { stages: [{ name: 'pvc' }, { name: 'mongodb', budget: '30 minutes' }] },
        /pipeline\.stages\[1\]\.budget: must match pattern/,
      ],
      [
        { stages: [{ name: 'mongodb', options: { 'ns-includ': 'x' } }] },
        /pipeline\.stages\[0\]\.options\.ns-includ: `lifeboat mongodb backup` has no option --ns-includ/,
      ],
      [{ stages: [{ name: 'mine' }] }, /pipeline\.stages\[0\]: stage "mine" needs a command/],
      [
        { stages: [{ name: 'mongodb', colour: 'red' }] },
        /pipeline\.stages\[0\]: must NOT have additional properties: colour/,
      ],
    ];
    const before = (await cli(['pipeline', 'history', '--json'])).json.length;
    for (const [i, [pipeline, expected]] of cases.entries()) {
      const config = await withConfig(`bad-${i}.yaml`, pipeline);
      const r = await cli(['pipeline', 'run'], { LIFEBOAT_CONFIG: config });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, expected);
    }
    assert.equal((await cli(['pipeline', 'history', '--json'])).json.length, before, 'no run was started');
  });

  test('deploy/kubernetes/pipeline-cronjob.yaml server-side applies with strict validation', async () => {
    const text = await readFile(path.join(PROJECT_ROOT, 'deploy/kubernetes/pipeline-cronjob.yaml'), 'utf8');
    const doc = YAML.parse(text);
    assert.equal(doc.kind, 'CronJob');
    const url = `/apis/batch/v1/namespaces/${doc.metadata.namespace}/cronjobs/${doc.metadata.name}`;
    const applied = await rawRequest(
      kube,
      kube.tokens.admin,
      'PATCH',
      `${url}?fieldManager=lifeboat-test&fieldValidation=Strict`,
      text,
      'application/apply-patch+yaml',
    );
    assert.equal(applied.status, 201, JSON.stringify(applied.body));
    const back = (await admin(kube).get(url)).body;
    assert.equal(back.spec.schedule, '0 2 * * *');
    assert.equal(back.spec.timeZone, 'Etc/UTC');
    assert.equal(back.spec.concurrencyPolicy, 'Forbid');
    assert.ok(back.spec.startingDeadlineSeconds > 0);
    assert.ok(back.spec.successfulJobsHistoryLimit >= 1 && back.spec.failedJobsHistoryLimit >= 1);
    const job = back.spec.jobTemplate.spec;
    assert.ok(job.activeDeadlineSeconds >= 3 * 3600, 'longer than the default stage budgets');
    assert.equal(job.template.spec.serviceAccountName, 'lifeboat');
    // Through the image's entrypoint (tini -- lifeboat), so SIGTERM reaches Lifeboat: args, no command.
    assert.equal(job.template.spec.containers[0].command, undefined);
    assert.deepEqual(job.template.spec.containers[0].args, ['pipeline', 'run', '--reason', 'schedule']);
    // The ServiceAccount it names is the one deploy/rbac ships (applied in before()).
    assert.equal((await admin(kube).get('/api/v1/namespaces/lifeboat/serviceaccounts/lifeboat')).status, 200);
  });
});
