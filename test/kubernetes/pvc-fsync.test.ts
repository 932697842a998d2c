/* eslint-disable @typescript-eslint/no-explicit-any -- API objects are untyped JSON in these tests */
/**
 * `pvc snapshot --mongodb-uri`: fsyncLock around the VolumeSnapshots. Needs etcd + kube-apiserver with the
 * snapshot CRDs (test/env/kube.ts; this file plays the snapshot controller) and FerretDB.
 *
 * What cannot be tested here: a real fsyncLock/fsyncUnlock. FerretDB has no `fsync` command ("no such
 * command"), so against it only the refusal and `--no-fsync-lock` are exercised; the lock itself runs
 * only against a real MongoDB (src/sources/mongodb/fsync-lock.ts, docs/kubernetes.md say so too).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { runCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import {
  admin,
  bindPvc,
  controllerLoop,
  setSnapshotStatus,
  type ControllerLoop,
} from '../env/kube-controllers.ts';
import { createRocketChat } from '../env/kube-fixtures.ts';
import { startFerretDB, type MongoTestServer } from '../env/ferretdb.ts';

const NS = 'rocketchat';
const VS = `/apis/snapshot.storage.k8s.io/v1/namespaces/${NS}/volumesnapshots`;

describe('pvc snapshot --mongodb-uri (fsyncLock)', () => {
  let kube: KubeTestCluster;
  let mongo: MongoTestServer;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let loop: ControllerLoop;
  const cli = (args: string[]) => runCli(args, { env });
  const snapshots = async () => ((await admin(kube).get(VS)).body.items ?? []) as any[];

  before(async () => {
    [kube, mongo] = await Promise.all([startKube(), startFerretDB()]);
    work = await tempDir('lifeboat-k8s-fsync-');
    env = {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'pw',
      KUBECONFIG: kube.kubeconfigPath,
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    };
    await createRocketChat(kube, NS);
    const a = admin(kube);
    await a.post('/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses', {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotClass',
      metadata: {
        name: 'csi-azuredisk-vsc',
        annotations: { 'snapshot.storage.kubernetes.io/is-default-class': 'true' },
      },
      driver: 'disk.csi.azure.com',
      deletionPolicy: 'Delete',
    });
    await bindPvc(kube, NS, 'datadir-mongodb-0');
    loop = controllerLoop(async () => {
      for (const vs of (await admin(kube).get(VS)).body.items ?? []) {
        if (vs.status) continue;
        await setSnapshotStatus(kube, NS, vs.metadata.name, { readyToUse: true, restoreSize: '2Gi' });
      }
    });
    assert.equal((await cli(['init'])).code, 0);
  });
  after(async () => {
    await loop?.stop().catch(() => {});
    await kube?.stop();
    await mongo?.stop();
    await work?.cleanup();
  });

  test('a server without fsyncLock (FerretDB) is refused before any VolumeSnapshot is made', async () => {
    const r = await cli(['pvc', 'snapshot', '-n', NS, '--mongodb-uri', mongo.uri, '--poll-ms', '100']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the MongoDB server has no fsyncLock .*no such command.*--no-fsync-lock/s);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.deepEqual(await snapshots(), []);
    assert.equal((await cli(['snapshots', '--type', 'pvc-snapshots', '--json'])).stdout.trim(), '[]');
  });

  test('--no-fsync-lock goes on without the lock, and says so', async () => {
    const r = await cli([
      'pvc',
      'snapshot',
      '-n',
      NS,
      '--mongodb-uri',
      mongo.uri,
      '--no-fsync-lock',
      '--poll-ms',
      '100',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /--no-fsync-lock: snapshots taken without fsyncLock/);
    assert.equal(r.json.volumes.length, 1);
    assert.equal((await snapshots()).length, 1);
  });

  test('--no-fsync-lock without --mongodb-uri is a usage error', async () => {
    const r = await cli(['pvc', 'snapshot', '-n', NS, '--no-fsync-lock']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--no-fsync-lock goes with --mongodb-uri/);
  });
});
