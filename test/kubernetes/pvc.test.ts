/* eslint-disable @typescript-eslint/no-explicit-any -- API objects are untyped JSON in these tests */
/**
 * Needs: etcd + kube-apiserver with the CSI snapshot CRDs (test/env/kube.ts). No controllers run, so this
 * file plays them with test/env/kube-controllers.ts: the CSI snapshot controller (sets readyToUse and
 * restoreSize, or an error, or never answers), the pvc-protection controller (drops finalizers of deleted
 * PVCs) and the PV binder (binds restored PVCs, or refuses to, to force a rollback).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { runCli } from '../env/cli.ts';
import { execFile } from 'node:child_process';
import { PROJECT_ROOT, tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import {
  admin,
  bindPvc,
  controllerLoop,
  releaseDeletedPvcs,
  setSnapshotStatus,
  type ControllerLoop,
} from '../env/kube-controllers.ts';
import { asShippedServiceAccount, createRocketChat } from '../env/kube-fixtures.ts';

const NS = 'rocketchat';
const VS = `/apis/snapshot.storage.k8s.io/v1/namespaces/${NS}/volumesnapshots`;
const PVC = `/api/v1/namespaces/${NS}/persistentvolumeclaims/datadir-mongodb-0`;
const STS = `/apis/apps/v1/namespaces/${NS}/statefulsets/mongodb`;

describe('pvc snapshot and restore against kube-apiserver', () => {
  let kube: KubeTestCluster;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let loop: ControllerLoop;
  // What the played snapshot controller does with new VolumeSnapshots.
  let snapshotMode: 'ready' | 'error' | 'never' = 'ready';
  // Whether the played binder binds restored PVCs; replicas of the StatefulSet seen when it bound one.
  let bindRestored = true;
  // A restored claim (by its VolumeSnapshot) whose deletion the played pvc-protection controller holds.
  let holdFor: string | undefined;
  const replicasAtBind: number[] = [];
  const cli = (args: string[]) => runCli(args, { env });
  const get = async (p: string) => (await admin(kube).get(p)).body;

  before(async () => {
    kube = await startKube();
    work = await tempDir('lifeboat-k8s-pvc-');
    env = {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'pw',
      KUBECONFIG: kube.kubeconfigPath,
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    };
    await createRocketChat(kube, NS);
    const a = admin(kube);
    await a.post('/apis/storage.k8s.io/v1/storageclasses', {
      metadata: { name: 'managed-csi' },
      provisioner: 'disk.csi.azure.com',
      volumeBindingMode: 'Immediate',
      allowVolumeExpansion: true,
    });
    await a.post('/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses', {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotClass',
      metadata: {
        name: 'csi-azuredisk-vsc',
        annotations: { 'snapshot.storage.kubernetes.io/is-default-class': 'true' },
      },
      driver: 'disk.csi.azure.com',
      deletionPolicy: 'Delete',
      parameters: { incremental: 'true', tags: 'app=rocketchat,backup=lifeboat' },
    });
    await bindPvc(kube, NS, 'datadir-mongodb-0');
    loop = controllerLoop(async () => {
      for (const vs of (await get(VS)).items ?? []) {
        if (vs.status || snapshotMode === 'never') continue;
        if (snapshotMode === 'ready')
          await setSnapshotStatus(kube, NS, vs.metadata.name, { readyToUse: true, restoreSize: '2Gi' });
        else
          await setSnapshotStatus(kube, NS, vs.metadata.name, {
            readyToUse: false,
            error: { message: 'Failed to create snapshot: quota exceeded for resource snapshots' },
          });
      }
      const pvc = await get(PVC);
      if (!(holdFor && pvc.spec?.dataSource?.name === holdFor)) await releaseDeletedPvcs(kube, NS);
      if (
        bindRestored &&
        pvc.kind === 'PersistentVolumeClaim' &&
        pvc.spec.dataSource &&
        !pvc.spec.volumeName &&
        !pvc.metadata.deletionTimestamp
      ) {
        replicasAtBind.push((await get(STS)).spec.replicas);
        await bindPvc(kube, NS, 'datadir-mongodb-0');
      }
    });
    assert.equal((await cli(['init'])).code, 0);
  });
  after(async () => {
    await loop?.stop().catch(() => {});
    await kube?.stop();
    await work?.cleanup();
  });

  let timestamp = '';
  test('snapshot: labelled VolumeSnapshot, ready, recorded; retention deletes only old Lifeboat ones', async () => {
    const old = (name: string, labels: Record<string, string>) =>
      admin(kube).post(VS, {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        metadata: { name, labels },
        spec: { source: { persistentVolumeClaimName: 'datadir-mongodb-0' } },
      });
    await old('lifeboat-old', {
      'app.kubernetes.io/managed-by': 'lifeboat',
      'lifeboat.io/timestamp': '20200101_000000',
    });
    await old('manual-old', { 'lifeboat.io/timestamp': '20200101_000000' });
    const r = await cli([
      'pvc',
      'snapshot',
      '--namespace',
      NS,
      '--retention-days',
      '7',
      '--poll-ms',
      '100',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    timestamp = r.json.timestamp;
    assert.equal(r.json.volumes.length, 1);
    const v = r.json.volumes[0];
    assert.deepEqual(
      [v.pvc, v.class, v.driver, v.restoreSize, v.workload],
      [
        'datadir-mongodb-0',
        'csi-azuredisk-vsc',
        'disk.csi.azure.com',
        '2Gi',
        { kind: 'StatefulSet', name: 'mongodb' },
      ],
    );
    const vs = await get(`${VS}/${v.volumeSnapshot}`);
    assert.equal(vs.metadata.labels['app.kubernetes.io/managed-by'], 'lifeboat');
    assert.equal(vs.metadata.labels['lifeboat.io/timestamp'], timestamp);
    assert.equal(vs.metadata.labels['lifeboat.io/pvc'], 'datadir-mongodb-0');
    assert.equal(vs.spec.source.persistentVolumeClaimName, 'datadir-mongodb-0');
    assert.deepEqual(r.json.deleted, [`${NS}/lifeboat-old`]);
    assert.equal(
      (await admin(kube).get(`${VS}/manual-old`)).status,
      200,
      'never deletes VolumeSnapshots Lifeboat did not create',
    );
    const snaps = await cli(['snapshots', '--json']);
    assert.ok(snaps.json.some((s: any) => s.type === 'pvc-snapshots'));
  });

  test('a failed snapshot reports the CSI error; a silent one times out; neither leaves VolumeSnapshots', async () => {
    const before_ = (await get(VS)).items.length;
    snapshotMode = 'error';
    const failed = await cli(['pvc', 'snapshot', '--namespace', NS, '--poll-ms', '100']);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /failed: Failed to create snapshot: quota exceeded for resource snapshots/);
    snapshotMode = 'never';
    const slow = await cli(['pvc', 'snapshot', '--namespace', NS, '--timeout', '1', '--poll-ms', '100']);
    assert.notEqual(slow.code, 0);
    assert.match(slow.stderr, /not readyToUse after 1 s/);
    snapshotMode = 'ready';
    assert.equal((await get(VS)).items.length, before_);
    const noClass = await cli(['pvc', 'snapshot', '--namespace', 'nosuch', '--poll-ms', '100']);
    assert.notEqual(noClass.code, 0);
    assert.match(noClass.stderr, /no bound CSI PVCs in nosuch/);
  });

  test('restore: dry-run changes nothing; restore scales down, recreates from the snapshot, keeps the old disk, scales up', async () => {
    const oldPv = (await get(PVC)).spec.volumeName;
    const dry = await cli(['pvc', 'restore', '--timestamp', timestamp, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(
      dry.json.pvcs.map((p: any) => [p.pvc, p.result, p.size]),
      [['datadir-mongodb-0', 'would-restore', '2Gi']],
    );
    assert.deepEqual(dry.json.workloads, [
      { namespace: NS, kind: 'StatefulSet', name: 'mongodb', replicas: 1 },
    ]);
    assert.equal((await get(PVC)).spec.volumeName, oldPv);

    const r = await cli(['pvc', 'restore', '--timestamp', timestamp, '--poll-ms', '100', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.pvcs[0].result, 'restored');
    assert.equal(r.json.pvcs[0].retainedVolume, oldPv);
    const pvc = await get(PVC);
    assert.deepEqual(pvc.spec.dataSource, {
      apiGroup: 'snapshot.storage.k8s.io',
      kind: 'VolumeSnapshot',
      name: r.json.pvcs[0].volumeSnapshot,
    });
    assert.equal(pvc.spec.resources.requests.storage, '2Gi', 'at least the snapshot restoreSize');
    assert.notEqual(pvc.spec.volumeName, oldPv);
    assert.equal(
      (await get(`/api/v1/persistentvolumes/${oldPv}`)).spec.persistentVolumeReclaimPolicy,
      'Retain',
    );
    assert.deepEqual(replicasAtBind, [0], 'the StatefulSet was scaled down while the PVC was replaced');
    assert.equal((await get(STS)).spec.replicas, 1, 'and scaled back up');
  });

  test('a failure part-way restores the previous PVC and replica count', async () => {
    const previousPv = (await get(PVC)).spec.volumeName;
    bindRestored = false;
    const r = await cli(['pvc', 'restore', '--timestamp', timestamp, '--timeout', '2', '--poll-ms', '100']);
    bindRestored = true;
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /PVC restore failed and was rolled back: restored PVC rocketchat\/datadir-mongodb-0 not Bound after 2 s/,
    );
    const pvc = await get(PVC);
    assert.equal(pvc.spec.volumeName, previousPv, 'back on its previous volume');
    assert.equal(
      (await get(`/api/v1/persistentvolumes/${previousPv}`)).spec.claimRef.uid,
      undefined,
      'claimRef freed for rebinding',
    );
    assert.equal((await get(STS)).spec.replicas, 1);
  });

  test('restore refuses up front when a VolumeSnapshot is gone, changing nothing', async () => {
    // Playing the PV binder for the rolled-back claim (a real one rebinds it to its retained volume).
    const claim = await get(PVC);
    claim.status = {
      phase: 'Bound',
      capacity: { storage: claim.spec.resources.requests.storage },
      accessModes: claim.spec.accessModes,
    };
    await admin(kube).put(`${PVC}/status`, claim);
    // Through the guide's wrapper: no --namespace means every namespace but kube-*.
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        path.join(PROJECT_ROOT, 'scripts/backup/create-pvc-snapshots.sh'),
        ['--poll-ms', '100', '--json'],
        { env: { ...process.env, ...env, LIFEBOAT_CONFIG: '' } },
        (e, stdout, stderr) => (e ? reject(new Error(stderr)) : resolve(stdout)),
      ),
    );
    const r = { json: JSON.parse(out) };
    assert.deepEqual(
      r.json.volumes.map((v: any) => `${v.namespace}/${v.pvc}`),
      [`${NS}/datadir-mongodb-0`],
    );
    await admin(kube).del(`${VS}/${r.json.volumes[0].volumeSnapshot}`);
    const pvBefore = (await get(PVC)).metadata.uid;
    const res = await cli(['pvc', 'restore', '--timestamp', r.json.timestamp]);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /no longer exists/);
    assert.equal((await get(PVC)).metadata.uid, pvBefore);
  });
  test('snapshot and restore work under the shipped least-privilege ClusterRole', async () => {
    const cfg = await asShippedServiceAccount(kube, path.join(work.path, 'lifeboat.yaml'), NS);
    // Without --namespace: the context's namespace.
    const snap = await cli([
      'pvc',
      'snapshot',
      '--kubeconfig',
      cfg,
      '--retention-days',
      '7',
      '--poll-ms',
      '100',
      '--json',
    ]);
    assert.equal(snap.code, 0, snap.stderr);
    assert.equal(snap.json.volumes[0].namespace, NS);
    const r = await cli([
      'pvc',
      'restore',
      '--kubeconfig',
      cfg,
      '--timestamp',
      snap.json.timestamp,
      '--poll-ms',
      '100',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.pvcs[0].result, 'restored');
    assert.equal((await get(PVC)).spec.dataSource.name, snap.json.volumes[0].volumeSnapshot);
  });

  test('retention forgets the records of the VolumeSnapshots it deletes; validate names records whose snapshots are gone', async () => {
    const first = await cli(['pvc', 'snapshot', '--namespace', NS, '--poll-ms', '100', '--json']);
    assert.equal(first.code, 0, first.stderr);
    const firstVs = first.json.volumes[0].volumeSnapshot;
    // Made to look old, as the snapshot of a run 6 years ago would be.
    await admin(kube).patch(`${VS}/${firstVs}`, {
      metadata: { labels: { 'lifeboat.io/timestamp': '20200101_000000' } },
    });
    await new Promise((r) => setTimeout(r, 1100)); // a new second: a new VolumeSnapshot name
    const second = await cli([
      'pvc',
      'snapshot',
      '--namespace',
      NS,
      '--retention-days',
      '7',
      '--poll-ms',
      '100',
      '--json',
    ]);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(second.json.deleted, [`${NS}/${firstVs}`]);
    assert.deepEqual(second.json.forgotten, [first.json.id]);
    const ids = (await cli(['snapshots', '--json'])).json.map((s: any) => s.id);
    assert.ok(!ids.includes(first.json.id), 'the record went with its VolumeSnapshot');
    assert.ok(ids.includes(second.json.id));

    // Deleted by someone else: the record stays, and validate says it points at nothing.
    await new Promise((r) => setTimeout(r, 1100));
    const third = await cli(['pvc', 'snapshot', '--namespace', NS, '--poll-ms', '100', '--json']);
    assert.equal(third.code, 0, third.stderr);
    const secondVs = second.json.volumes[0].volumeSnapshot;
    await admin(kube).del(`${VS}/${secondVs}`);
    const v = await cli(['validate', '--type', 'pvc', '--json']);
    const pvc = v.json.results.find((l: any) => l.layer === 'pvc');
    assert.equal(pvc.status, 'warning', JSON.stringify(pvc));
    // (The record of the earlier test's deleted VolumeSnapshot is named as well.)
    const w = pvc.warnings.find((x: string) =>
      /older record\(s\) point to VolumeSnapshots the cluster no longer has/.test(x),
    );
    assert.ok(w?.includes(`${second.json.id.slice(0, 8)} (${NS}/${secondVs})`), JSON.stringify(pvc.warnings));
    assert.ok(!w.includes(third.json.id.slice(0, 8)), 'the newest record is intact');
  });

  test('a rollback step that fails is named, with the state each PVC and workload is left in', async () => {
    const dry = await cli(['pvc', 'restore', '--timestamp', timestamp, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const vs = dry.json.pvcs[0].volumeSnapshot;
    const previousPv = (await get(PVC)).spec.volumeName;
    bindRestored = false;
    holdFor = vs;
    try {
      const r = await cli(['pvc', 'restore', '--timestamp', timestamp, '--timeout', '2', '--poll-ms', '100']);
      assert.notEqual(r.code, 0);
      assert.doesNotMatch(r.stderr, /was rolled back/);
      assert.match(
        r.stderr,
        /PVC restore failed \(restored PVC rocketchat\/datadir-mongodb-0 not Bound after 2 s\) and 1 rollback step\(s\) failed: PVC rocketchat\/datadir-mongodb-0: delete the restored claim: .*still exists/,
      );
      assert.ok(
        r.stderr.includes(
          `Now: PVC rocketchat/datadir-mongodb-0: the restored claim (from ${vs}) is still there; its previous volume ${previousPv} is kept (reclaim policy Retain)`,
        ),
        r.stderr,
      );
      assert.equal((await get(STS)).spec.replicas, 1, 'the workload step succeeded and is not reported');
      assert.equal((await get(PVC)).spec.dataSource.name, vs, 'the state reported is the state there');
    } finally {
      holdFor = undefined;
      bindRestored = true;
    }
  });
});
