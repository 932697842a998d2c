/* eslint-disable @typescript-eslint/no-explicit-any -- API objects and CLI JSON are untyped here */
/**
 * `lifeboat recover` end to end, through the real CLI, against real peers: FerretDB, etcd + kube-apiserver
 * with the CSI snapshot CRDs (test/env/kube.ts) and the test Key Vault (test/env/keyvault.ts: a fake over
 * real HTTPS, see its header). No controllers run in the test cluster, so the loop below plays them with
 * test/env/kube-controllers.ts: the CSI snapshot controller (VolumeSnapshots become ready), the
 * pvc-protection controller, the PV binder (restored PVCs bind) and — `playWorkloads`, added for these
 * tests — the Deployment/StatefulSet controllers and kubelet (one unscheduled Pod per replica, status
 * ready for the current generation). Rocket.Chat's `/api/info` is a local HTTP server that answers only
 * while the Deployment has pods.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { runCli, spawnCli, type CliResult } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import {
  admin,
  bindPvc,
  controllerLoop,
  playWorkloads,
  releaseDeletedPvcs,
  setSnapshotStatus,
  type ControllerLoop,
} from '../env/kube-controllers.ts';
import {
  MONGO_PASSWORD,
  createRocketChat,
  rocketChatObjectPaths,
  createAzureDiskClasses,
} from '../env/kube-fixtures.ts';
import { startKeyVault, VALID_TOKEN, type TestKeyVault } from '../env/keyvault.ts';
import { startFerretDB, type MongoTestServer } from '../env/ferretdb.ts';
import { hashCollection } from '../../src/sources/mongodb/restore.ts';
import {
  DEFAULT_BUDGETS,
  budgetsFrom,
  overBudgetOnly,
  parseWorkload,
  planRecovery,
  recoveryError,
  type PlanInputs,
  type RecoveryPlan,
} from '../../src/operations/recover.ts';
import { runOperation, type StepDefinition } from '../../src/operations/runner.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';

const NS = 'rocketchat';
const CORE = `/api/v1/namespaces/${NS}`;
const APPS = `/apis/apps/v1/namespaces/${NS}`;
const VS = `/apis/snapshot.storage.k8s.io/v1/namespaces/${NS}/volumesnapshots`;
const DEPLOY = `${APPS}/deployments/rocketchat`;
const PVC = `${CORE}/persistentvolumeclaims/datadir-mongodb-0`;
const DB = 'rocketchat';

describe('lifeboat recover against FerretDB, kube-apiserver and Key Vault', () => {
  let kube: KubeTestCluster;
  let kv: TestKeyVault;
  let mongo: MongoTestServer;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let loop: ControllerLoop;
  let smoke: http.Server;
  let smokeUrl = '';
  let holdPods = false;
  /** spec.replicas of the Deployment each time it changed; when its pods were last seen gone. */
  const replicaHistory: number[] = [];
  let podsGoneAt = '';
  const outputs: string[] = [];
  const cli = async (args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> => {
    const r = await runCli(args, { env: { ...env, ...extra } });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const get = async (p: string) => (await admin(kube).get(p)).body;
  const pods = async () =>
    ((await get(`${CORE}/pods?labelSelector=app%3Drocketchat`)).items ?? []).length as number;

  const dbState = async (): Promise<Record<string, string>> => {
    const client = new MongoClient(mongo.uri);
    try {
      const out: Record<string, string> = {};
      const names = (await client.db(DB).listCollections({}, { nameOnly: true }).toArray()).map(
        (c) => c.name,
      );
      for (const name of names.sort()) {
        const h = await hashCollection(client, DB, name);
        out[name] = `${h.count}:${h.hex()}`;
      }
      return out;
    } finally {
      await client.close();
    }
  };
  const withDb = async (fn: (client: MongoClient) => Promise<unknown>) => {
    const client = new MongoClient(mongo.uri);
    try {
      await fn(client);
    } finally {
      await client.close();
    }
  };
  /** What a recovery must not change: workloads, PVC, database, Secrets. */
  const targetState = async () => ({
    replicas: (await get(DEPLOY)).spec?.replicas,
    restartedAt: (await get(DEPLOY)).spec?.template?.metadata?.annotations,
    pvc: (await get(PVC)).metadata?.uid,
    secrets: ((await get(`${CORE}/secrets`)).items ?? []).map((s: any) => s.metadata.uid).sort(),
    db: await dbState(),
  });

  before(async () => {
    work = await tempDir('lifeboat-recover-');
    [kube, kv, mongo] = await Promise.all([startKube(), startKeyVault(), startFerretDB()]);
    smoke = http.createServer((req, res) => {
      void pods().then(
        (n) => {
          res.writeHead(n > 0 && req.url === '/api/info' ? 200 : 503, { 'content-type': 'application/json' });
          res.end(JSON.stringify(n > 0 ? { success: true, version: '6.12.0' } : { success: false }));
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
    });
    await new Promise<void>((r) => smoke.listen(0, '127.0.0.1', r));
    smokeUrl = `http://127.0.0.1:${(smoke.address() as { port: number }).port}/api/info`;
    env = {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'recover test',
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
      KUBECONFIG: kube.kubeconfigPath,
      NODE_EXTRA_CA_CERTS: kv.tls.caFile,
      LIFEBOAT_SECRETS_VAULT: kv.url,
      LIFEBOAT_SECRETS_VAULT_TOKEN: VALID_TOKEN,
      LIFEBOAT_MONGODB_URI: mongo.uri,
    };
    await createRocketChat(kube, NS);
    await createAzureDiskClasses(kube, 'Retain');
    await bindPvc(kube, NS, 'datadir-mongodb-0');
    loop = controllerLoop(async () => {
      for (const vs of (await get(VS)).items ?? [])
        if (!vs.status)
          await setSnapshotStatus(kube, NS, vs.metadata.name, { readyToUse: true, restoreSize: '1Gi' });
      await releaseDeletedPvcs(kube, NS);
      const pvc = await get(PVC);
      if (
        pvc.kind === 'PersistentVolumeClaim' &&
        pvc.spec.dataSource &&
        !pvc.spec.volumeName &&
        !pvc.metadata.deletionTimestamp
      )
        await bindPvc(kube, NS, 'datadir-mongodb-0');
      // The last pod of the application went no earlier than its deletion was asked for; a
      // timestamp taken after the loop saw it gone could be later than the moment recover saw it.
      await playWorkloads(kube, NS, {
        holdPods,
        onPodDeleted: (workload, at) => {
          if (workload === 'rocketchat') podsGoneAt = at;
        },
      });
      const d = await get(DEPLOY);
      if (d.kind === 'Deployment' && replicaHistory.at(-1) !== d.spec.replicas)
        replicaHistory.push(d.spec.replicas);
    });
    await withDb(async (c) => {
      await c
        .db(DB)
        .collection('users')
        .insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: `u${i}` as any, name: `user ${i}` })));
      await c
        .db(DB)
        .collection('rocketchat_message')
        .insertMany(
          Array.from({ length: 300 }, (_, i) => ({
            rid: `room${i % 7}`,
            msg: `message ${i}`,
            ts: new Date(1733050000000 + i),
          })),
        );
    });
    assert.equal((await cli(['init'])).code, 0);
    for (const args of [
      ['mongodb', 'backup'],
      ['cluster-state', 'backup', '--namespace', NS],
      ['pvc', 'snapshot', '--namespace', NS, '--poll-ms', '100'],
      ['secrets', 'backup', '--namespace', NS],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    // Let the played controllers settle (pods for every replica, statuses).
    for (let i = 0; i < 100 && (await pods()) < 2; i++) await new Promise((r) => setTimeout(r, 100));
  });
  after(async () => {
    await loop?.stop().catch(() => {});
    await new Promise((r) => smoke?.close(r));
    await Promise.all([kube?.stop(), kv?.close(), mongo?.stop()]);
    await work?.cleanup();
  });
  after(() => {
    // Nothing secret ever reaches the output.
    for (const o of outputs) assert.ok(!o.includes(MONGO_PASSWORD), 'a secret value was printed');
  });

  let backup: Record<string, string> = {};
  const appArgs = ['--app', 'deployment/rocketchat', '-n', NS, '--poll-ms', '100', '--timeout', '60'];

  test('--dry-run lists the snapshot of each layer and the budgets, says there is no drill yet, changes nothing', async () => {
    backup = await dbState();
    const newest = new Map<string, string>();
    for (const s of (await cli(['snapshots', '--json'])).json) newest.set(s.type, s.id);
    const before_ = await targetState();
    const r = await cli([
      'recover',
      '--plan',
      'full',
      ...appArgs,
      '--smoke-test-url',
      smokeUrl,
      '--dry-run',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.dryRun, true);
    const phases = new Map<string, any>(r.json.plan.phases.map((p: any) => [p.name, p]));
    assert.deepEqual(
      [...phases.keys()],
      [
        'preflight',
        'terraform-state',
        'secrets',
        'cluster-state',
        'pvc',
        'mongodb',
        'restart',
        'smoke-test',
        'validate',
      ],
    );
    assert.equal(phases.get('mongodb').snapshot.id, newest.get('mongodb'));
    assert.equal(phases.get('cluster-state').snapshot.id, newest.get('cluster-state'));
    assert.equal(phases.get('pvc').snapshot.id, newest.get('pvc-snapshots'));
    assert.equal(phases.get('secrets').enabled, true);
    assert.equal(phases.get('terraform-state').enabled, false);
    assert.equal(phases.get('mongodb').budgetMs, 30 * 60_000);
    assert.equal(phases.get('pvc').budgetMs, 15 * 60_000);
    assert.equal(phases.get('cluster-state').budgetMs, 45 * 60_000);
    assert.equal(r.json.plan.budgetMs, 90 * 60_000);
    assert.equal(phases.get('mongodb').expected, undefined);
    assert.deepEqual(r.json.plan.problems, []);
    assert.match(r.json.plan.operator[0], /terraform apply/);

    const human = await cli(['recover', '--plan', 'data-only', ...appArgs, '--dry-run']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`mongodb\\s+${newest.get('mongodb')!.slice(0, 8)}`));
    assert.match(human.stdout, /no drill yet/);
    assert.match(human.stdout, /nothing changed/);

    const tooEarly = await cli([
      'recover',
      '--plan',
      'data-only',
      ...appArgs,
      '--timestamp',
      '20000101_000000',
      '--dry-run',
      '--json',
    ]);
    assert.equal(tooEarly.code, 1);
    assert.match(tooEarly.json.plan.problems[0], /no mongodb snapshot at or before 20000101_000000/);
    assert.deepEqual(await targetState(), before_, 'a dry run changes nothing');
    const none = await cli(['recover', '--resume', 'last', '--json']);
    assert.equal(none.code, 1);
    assert.equal(none.json.error.code, 'NOT_FOUND', 'and wrote no recovery record');
  });

  test('a preflight failure (wrong key, unreachable Key Vault) stops before anything changes', async () => {
    const before_ = await targetState();
    const wrongKey = await cli(['recover', '--plan', 'data-only', ...appArgs, '--json'], {
      LIFEBOAT_PASSWORD: 'not the key',
    });
    assert.equal(wrongKey.code, 1);
    assert.equal(wrongKey.json.error.code, 'WRONG_KEY');
    assert.match(wrongKey.stderr, /recovery preflight: repository: /);

    const noVault = await cli([
      'recover',
      '--plan',
      'full',
      ...appArgs,
      '--vault',
      'https://127.0.0.1:9',
      '--json',
    ]);
    assert.equal(noVault.code, 1, noVault.stderr);
    assert.equal(noVault.json.error.phase, 'preflight');
    assert.match(noVault.stderr, /failed in phase preflight: .*nothing was changed/);
    assert.match(noVault.stderr, /not run: .*secrets, cluster-state, pvc, mongodb/);
    assert.deepEqual(await targetState(), before_);
    assert.deepEqual(replicaHistory, [2], 'the application was never scaled');
  });

  test('data-only: scale to 0, wait for the pods to go, restore MongoDB, scale back to the recorded count, smoke test', async () => {
    await withDb(async (c) => {
      await c.db(DB).collection('rocketchat_message').deleteMany({ rid: 'room3' });
      await c
        .db(DB)
        .collection('users')
        .insertOne({ _id: 'intruder' as any, name: 'not in the backup' });
    });
    assert.notDeepEqual(await dbState(), backup);
    podsGoneAt = '';
    const r = await cli([
      'recover',
      '--plan',
      'data-only',
      ...appArgs,
      '--smoke-test-url',
      smokeUrl,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rec = r.json.recovery;
    assert.equal(rec.kind, 'recovery');
    assert.equal(rec.plan, 'data-only');
    assert.ok(['success', 'warning'].includes(rec.status), rec.status);
    const steps = new Map<string, any>(rec.steps.map((s: any) => [s.name, s]));
    assert.deepEqual(
      [...steps.keys()],
      ['preflight', 'scale-down', 'mongodb', 'scale-up', 'smoke-test', 'validate'],
    );
    assert.equal(steps.get('scale-down').summary[`${NS}/Deployment/rocketchat`], 2, 'replica count recorded');
    assert.equal(steps.get('scale-up').summary[`${NS}/Deployment/rocketchat`], 2);
    assert.equal(steps.get('mongodb').status, 'success');
    assert.equal(steps.get('mongodb').budgetMs, 30 * 60_000);
    assert.ok(
      podsGoneAt && podsGoneAt <= steps.get('mongodb').startedAt,
      'MongoDB was restored only once the pods were gone',
    );
    assert.deepEqual(replicaHistory.slice(-3), [2, 0, 2]);
    assert.equal(steps.get('smoke-test').status, 'success');
    assert.equal(steps.get('smoke-test').summary.version, '6.12.0');
    assert.deepEqual(await dbState(), backup, 'the database is the backup again');
    const d = await get(DEPLOY);
    assert.equal(d.spec.replicas, 2);
    assert.equal(d.metadata.annotations?.['lifeboat.io/recovery-replicas'], undefined, 'bookkeeping removed');
    // The record is in the repository.
    const again = await cli(['recover', '--resume', rec.id, '--json']);
    assert.equal(again.code, 2);
    assert.match(again.json.error.message, /already finished/);
  });

  test('a data-only recovery SIGKILLed mid-phase resumes from that phase with the recorded replica count', async () => {
    await withDb((c) => c.db(DB).collection('users').deleteMany({}));
    holdPods = true; // the pods do not go: scale-down waits, and is killed there
    const child = spawnCli(['recover', '--plan', 'data-only', ...appArgs, '--json'], { env });
    let killed = false;
    for (let i = 0; i < 300 && !killed; i++) {
      await new Promise((r) => setTimeout(r, 100));
      if ((await get(DEPLOY)).spec.replicas === 0) {
        await new Promise((r) => setTimeout(r, 300));
        child.kill('SIGKILL');
        killed = true;
      }
    }
    await new Promise((r) => child.once('close', r));
    assert.ok(killed, 'the recovery reached its scale-down');
    assert.equal((await get(DEPLOY)).spec.replicas, 0, 'killed with the application at 0');
    holdPods = false;
    const r = await cli(['recover', '--resume', 'last', '--smoke-test-url', smokeUrl, '--json']);
    assert.match(r.stderr, /with the plan it started with: --smoke-test-url left unused/);
    assert.equal(r.code, 0, r.stderr);
    const rec = r.json.recovery;
    assert.equal(rec.resumes.length, 1);
    const steps = new Map<string, any>(rec.steps.map((s: any) => [s.name, s]));
    assert.equal(steps.get('preflight').attempts, 1, 'a finished phase is not repeated');
    assert.equal(steps.get('scale-down').attempts, 2, 'the phase it was in is started again');
    assert.equal(steps.get('mongodb').attempts, 1);
    assert.equal(
      steps.get('scale-up').summary[`${NS}/Deployment/rocketchat`],
      2,
      'the count from before, not 0',
    );
    assert.equal((await get(DEPLOY)).spec.replicas, 2);
    assert.deepEqual(await dbState(), backup);
  });

  test('data-only: when the MongoDB phase fails, the application is scaled back and the error says where things are', async () => {
    const r = await cli(
      ['recover', '--plan', 'data-only', ...appArgs, '--skip', 'validate', '--json', '--server-timeout', '2'],
      {
        LIFEBOAT_MONGODB_URI: 'mongodb://127.0.0.1:9/',
      },
    );
    // The preflight catches the unreachable server: nothing is scaled.
    assert.equal(r.code, 1);
    assert.equal(r.json.error.phase, 'preflight');
    assert.equal((await get(DEPLOY)).spec.replicas, 2);

    // Now a server that is there for the preflight and gone for the restore.
    let stopped = false;
    const child = spawnCli(
      ['recover', '--plan', 'data-only', ...appArgs, '--json', '--server-timeout', '2'],
      { env },
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const watch = (async () => {
      for (let i = 0; i < 600 && !stopped; i++) {
        await new Promise((res) => setTimeout(res, 50));
        if ((await get(DEPLOY)).spec.replicas === 0) {
          await mongo.kill();
          stopped = true;
        }
      }
    })();
    const code = await new Promise<number | null>((res) => child.once('close', res));
    await watch;
    outputs.push(stdout, stderr);
    await mongo.restart();
    assert.ok(stopped, 'the server was stopped after the scale-down');
    assert.equal(code, 1, stderr);
    const error = JSON.parse(stdout).error;
    assert.equal(error.phase, 'mongodb');
    assert.equal(error.scaleBack.ok, true);
    assert.match(error.message, /failed in phase mongodb: .*scaled back to its recorded replicas/);
    assert.match(error.hint, /lifeboat recover --resume /);
    assert.equal((await get(DEPLOY)).spec.replicas, 2, 'not left at 0');
  });

  test('full: into an emptied namespace and a dropped database, from Key Vault and the repository', async () => {
    const original = {
      auth: (await get(`${CORE}/secrets/mongodb-auth`)).data,
      config: (await get(`${CORE}/configmaps/rocketchat-config`)).data,
    };
    const snapshotName = (await get(VS)).items[0].metadata.name;
    // Empty the namespace (the VolumeSnapshots stay: their disks live outside the cluster) and drop the database.
    const a = admin(kube);
    for (const p of rocketChatObjectPaths(NS)) {
      if (p === PVC) await a.patch(p, { metadata: { finalizers: null } });
      await a.del(p);
    }
    for (let i = 0; i < 100 && (await a.get(PVC)).status !== 404; i++)
      await new Promise((r) => setTimeout(r, 100));
    await withDb((c) => c.db(DB).dropDatabase());
    assert.deepEqual(await dbState(), {});

    const r = await cli(['recover', '--plan', 'full', ...appArgs, '--smoke-test-url', smokeUrl, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rec = r.json.recovery;
    const status = Object.fromEntries(rec.steps.map((s: any) => [s.name, s.status]));
    for (const [name, s] of Object.entries(status))
      assert.ok(['success', 'warning', 'skipped'].includes(s as string), `${name}: ${s}`);
    assert.equal(status['terraform-state'], 'skipped');
    const steps = new Map<string, any>(rec.steps.map((s: any) => [s.name, s]));
    assert.ok(steps.get('secrets').summary.created >= 2, 'Secrets came back from Key Vault');

    for (const p of rocketChatObjectPaths(NS)) assert.equal((await a.get(p)).status, 200, `${p} restored`);
    assert.deepEqual((await get(`${CORE}/secrets/mongodb-auth`)).data, original.auth);
    assert.deepEqual((await get(`${CORE}/configmaps/rocketchat-config`)).data, original.config);
    const pvc = await get(PVC);
    assert.equal(pvc.spec.dataSource.name, snapshotName, 'the PVC comes from its snapshot');
    assert.deepEqual(await dbState(), backup, 'the database is the backup again');
    const d = await get(DEPLOY);
    assert.ok(d.spec.template.metadata.annotations['kubectl.kubernetes.io/restartedAt'], 'rollout restarted');
    assert.equal(steps.get('smoke-test').status, 'success');
  });
  test('full with --include-terraform: the state files come back first, byte for byte, then the rest', async () => {
    const tf = path.join(work.path, 'infrastructure', 'terraform');
    await mkdir(tf, { recursive: true });
    const state = `${JSON.stringify({ version: 4, terraform_version: '1.10.6', serial: 12, lineage: 'lin-aks', outputs: {}, resources: [] }, null, 2)}\n`;
    await writeFile(path.join(tf, 'terraform.tfstate'), state);
    const b = await cli(['terraform', 'backup', '--dir', tf, '--json']);
    assert.equal(b.code, 0, b.stderr);
    // The infrastructure is gone with its state: the recovery writes the state where the operator says.
    const target = path.join(work.path, 'recovered-tf');
    await mkdir(target);
    const r = await cli([
      'recover',
      '--plan',
      'full',
      '--include-terraform',
      '--terraform-target',
      target,
      ...appArgs,
      '--smoke-test-url',
      smokeUrl,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const steps: any[] = r.json.recovery.steps;
    const tfStep = steps.find((s) => s.name === 'terraform-state');
    assert.equal(tfStep.status, 'success');
    assert.equal(tfStep.snapshot, b.json.id);
    assert.equal(tfStep.summary.workspaces, 1);
    // Before everything that needs the infrastructure (after the preflight, which changes nothing).
    const order = steps.filter((s) => s.status !== 'not-run').map((s) => s.name);
    assert.ok(order.indexOf('terraform-state') < order.indexOf('secrets'), order.join(' → '));
    assert.equal(await readFile(path.join(target, 'terraform.tfstate'), 'utf8'), state);
    assert.ok(
      r.json.plan.operator.some((o: string) => /terraform apply/.test(o)),
      'terraform apply stays the operator’s, and the plan says so',
    );
  });
  test('the human output: one line per phase with its time and budget, and the recovery id', async () => {
    const r = await cli(['recover', '--plan', 'data-only', ...appArgs, '--skip', 'validate']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^PHASE\s+STATUS\s+TIME\s+BUDGET\s+SNAPSHOT\s+DETAIL/m);
    assert.match(r.stdout, /^scale-down\s+success\s+\S+.*rocketchat\/Deployment\/rocketchat=2/m);
    assert.match(r.stdout, /^mongodb\s+success\s+.*30 min/m);
    assert.match(r.stdout, /^validate\s+skipped/m);
    assert.match(r.stdout, /^recovery \d{8}-\d{6}-[0-9a-f]{6} success in /m);
    assert.equal(r.stderr.includes('...'), false, 'no progress lines without a terminal');
    assert.equal((await get(DEPLOY)).spec.replicas, 2);
  });
});

describe('planRecovery (pure)', () => {
  const snap = (type: string, timestamp: string, tags: string[] = []): any => ({
    id: `${type}-${timestamp}`.padEnd(64, '0'),
    type,
    tags,
    timestamp,
    time: `${timestamp.slice(0, 4)}-${timestamp.slice(4, 6)}-${timestamp.slice(6, 8)}T${timestamp.slice(9, 11)}:${timestamp.slice(11, 13)}:${timestamp.slice(13, 15)}Z`,
    items: [],
  });
  const drill = (id: string, layer: string, durationMs: number, finishedAt: string): any => ({
    id,
    kind: 'drill',
    steps: [{ name: layer, layer, status: 'success', durationMs, finishedAt }],
  });
  const inputs = (over: Partial<PlanInputs> = {}): PlanInputs => ({
    plan: 'data-only',
    snapshots: [
      snap('mongodb', '20241201_020000'),
      snap('mongodb', '20241202_020000'),
      snap('mongodb', '20241202_090000', ['pre-restore']),
      snap('cluster-state', '20241201_020000'),
      snap('pvc-snapshots', '20241201_020000'),
    ],
    drills: [],
    budgets: DEFAULT_BUDGETS,
    apps: [parseWorkload('deployment/rocketchat', 'rocketchat')],
    namespaces: [],
    includeTerraform: false,
    skip: [],
    ...over,
  });
  const phase = (p: RecoveryPlan, name: string) => p.phases.find((x) => x.name === name)!;

  test('picks the newest snapshot at or before the timestamp, never a pre-restore copy', () => {
    assert.equal(phase(planRecovery(inputs()), 'mongodb').snapshot!.timestamp, '20241202_020000');
    assert.equal(
      phase(planRecovery(inputs({ timestamp: '20241201_235959' })), 'mongodb').snapshot!.timestamp,
      '20241201_020000',
    );
    const none = planRecovery(inputs({ timestamp: '20241130_000000' }));
    assert.deepEqual(none.problems, [
      'no mongodb snapshot at or before 20241130_000000 (the oldest is 20241201_020000)',
    ]);
  });

  test('expected times come from the newest drill of each layer; without one, none', () => {
    const drills = [
      drill('d1', 'mongodb', 60_000, '2024-12-01T03:00:00Z'),
      drill('d2', 'mongodb', 90_000, '2024-12-02T03:00:00Z'),
      drill('d3', 'pvc-snapshots', 30_000, '2024-12-02T03:00:00Z'),
    ];
    const data = planRecovery(inputs({ drills }));
    assert.deepEqual(phase(data, 'mongodb').expected, {
      ms: 90_000,
      drill: 'd2',
      at: '2024-12-02T03:00:00Z',
    });
    assert.equal(data.expectedMs, 90_000);
    const full = planRecovery(inputs({ plan: 'full', drills }));
    assert.equal(phase(full, 'cluster-state').expected, undefined, 'no drill yet');
    assert.equal(full.expectedMs, undefined, 'the total needs every layer');
    assert.equal(phase(full, 'pvc').expected!.ms, 30_000);
  });

  test('budgets, optional phases and what stays the operator’s', () => {
    const full = planRecovery(
      inputs({ plan: 'full', vault: 'https://kv', smokeTestUrl: 'http://x/api/info', skip: ['pvc'] }),
    );
    assert.deepEqual(
      full.phases.map((p) => [p.name, p.enabled, p.budgetMs]),
      [
        ['preflight', true, undefined],
        ['terraform-state', false, undefined],
        ['secrets', true, undefined],
        ['cluster-state', true, 45 * 60_000],
        ['pvc', false, undefined],
        ['mongodb', true, 30 * 60_000],
        ['restart', true, undefined],
        ['smoke-test', true, undefined],
        ['validate', true, undefined],
      ],
    );
    assert.match(full.operator[0], /terraform apply/);
    assert.deepEqual(planRecovery(inputs({ plan: 'full', includeTerraform: true })).problems, [
      'no terraform snapshot',
    ]);
    assert.match(planRecovery(inputs({ apps: [] })).problems[0], /needs the application to scale/);
    assert.throws(() => parseWorkload('pod/x', 'ns'), /is not KIND\/NAME/);
    assert.deepEqual(parseWorkload('chat/sts/mongodb', 'ns'), {
      namespace: 'chat',
      kind: 'StatefulSet',
      name: 'mongodb',
    });
    assert.equal(budgetsFrom({ mongodb: '45m', total: 120 }).mongodb, 45 * 60_000);
    assert.equal(budgetsFrom({ total: 120 }).total, 120 * 60_000);
    assert.throws(() => budgetsFrom({ pvc: 'soon' }), /recover.budgets.pvc: "soon" is not a duration/);
  });
});

describe('runOperation with budget mark', () => {
  test('a phase over its budget is a failure on the record, and the phases after it still run', async () => {
    const repo = await Repository.init(
      new MemoryBackend(),
      new PassphraseKeystore('pw', 'test', { N: 1024, r: 8, p: 1 }),
    );
    let clock = 0;
    const step = (name: string, ms: number): StepDefinition => ({
      name,
      onFailure: 'stop',
      budgetMs: 100,
      run: async () => {
        clock += ms;
        return {};
      },
    });
    const r = await runOperation([step('slow', 150), step('next', 10)], {
      records: repo,
      kind: 'recovery',
      budget: 'mark',
      actor: 'test',
      signal: new AbortController().signal,
      now: () => clock,
    });
    assert.deepEqual(
      r.steps.map((s) => s.status),
      ['failure', 'success'],
    );
    assert.ok(overBudgetOnly(r.steps[0]));
    assert.equal(recoveryError({ record: r }), undefined, 'late, not stopped');
  });
});
