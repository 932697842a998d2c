/* eslint-disable @typescript-eslint/no-explicit-any -- API objects are untyped JSON in these tests */
/**
 * Needs: etcd + kube-apiserver with the CSI snapshot and cert-manager CRDs (test/env/kube.ts). No controllers
 * run: deleting a namespace is finished by test/env/kube-controllers.ts playing the namespace controller.
 * Runs the real CLI (`lifeboat cluster-state backup|restore`) against a Rocket.Chat-like namespace.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { runCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import { admin, deleteNamespace } from '../env/kube-controllers.ts';
import {
  MONGO_PASSWORD,
  asShippedServiceAccount,
  createRocketChat,
  rocketChatObjectPaths,
} from '../env/kube-fixtures.ts';
import { stripObject } from '../../src/sources/kubernetes/objects.ts';
import { decodeHelmRelease } from '../../src/sources/kubernetes/helm.ts';

describe('cluster-state backup and restore against kube-apiserver', () => {
  let kube: KubeTestCluster;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  const before_: Record<string, any> = {};
  const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    runCli(args, { env: { ...env, ...extraEnv } });
  const live = async (p: string) => (await admin(kube).get(p)).body;

  before(async () => {
    kube = await startKube();
    work = await tempDir('lifeboat-k8s-cs-');
    env = {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'test-passphrase',
      KUBECONFIG: kube.kubeconfigPath,
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    };
    await createRocketChat(kube, 'rocketchat');
    for (const p of rocketChatObjectPaths('rocketchat')) before_[p] = stripObject(await live(p));
    const init = await cli(['init', '--json']);
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await kube?.stop();
    await work?.cleanup();
  });

  let backupTimestamp = '';
  test('backup records every object and the decoded Helm release, never printing secrets', async () => {
    const r = await cli([
      'cluster-state',
      'backup',
      '--namespace',
      'rocketchat',
      '--name',
      'pre-upgrade',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    backupTimestamp = r.json.timestamp;
    assert.deepEqual(r.json.namespaces, ['rocketchat']);
    assert.equal(r.json.counts.Secret, 4);
    assert.equal(r.json.counts.Certificate, 1);
    assert.equal(r.json.counts.Namespace, 1);
    assert.equal(
      r.json.counts.CustomResourceDefinition,
      2,
      'the CRDs of Certificate and Issuer, the custom kinds in use',
    );
    assert.deepEqual(
      r.json.helmReleases.map((h: any) => [h.name, h.chart, h.chartVersion, h.revision, h.status]),
      [['rocketchat', 'rocketchat', '6.2.0', 2, 'deployed']],
    );
    const b64 = Buffer.from(MONGO_PASSWORD).toString('base64');
    for (const text of [r.stdout, r.stderr])
      assert.ok(!text.includes(MONGO_PASSWORD) && !text.includes(b64), 'secret printed');
    const human = await cli(['cluster-state', 'backup', '--namespace', 'rocketchat']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /helm rocketchat\/rocketchat: rocketchat-6\.2\.0 revision 2 \(deployed\)/);
    assert.ok(!human.stdout.includes(MONGO_PASSWORD));
    const snaps = await cli(['snapshots', '--json']);
    assert.ok(snaps.json.some((s: any) => s.type === 'cluster-state' && s.tags.includes('pre-upgrade')));
    // Unchanged objects are byte-identical (stripped, canonical JSON): the next backup adds no data.
    const again = await cli(['cluster-state', 'backup', '--namespace', 'rocketchat', '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(r.json.bytesAdded > 0);
    assert.equal(again.json.bytesAdded, 0);
  });

  test('delete the namespace, restore: every object is back, equal apart from server-managed fields', async () => {
    await deleteNamespace(kube, 'rocketchat');
    assert.equal((await admin(kube).get('/api/v1/namespaces/rocketchat')).status, 404);
    const r = await cli(['cluster-state', 'restore', '--timestamp', backupTimestamp, '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const byKey = new Map(r.json.objects.map((o: any) => [o.key, o]));
    assert.equal((byKey.get('_cluster/Namespace/rocketchat') as any).result, 'created');
    assert.equal((byKey.get('rocketchat/Certificate/chat-tls') as any).result, 'created');
    // CRDs exist already: skipped, with the reason.
    assert.equal(
      (byKey.get('_cluster/CustomResourceDefinition/certificates.cert-manager.io') as any).result,
      'skipped',
    );
    assert.ok(!r.json.objects.some((o: any) => o.result === 'failed'));
    for (const p of rocketChatObjectPaths('rocketchat')) {
      assert.deepEqual(stripObject(await live(p)), before_[p], p);
    }
    // Order: the TLS Secret was created before its Certificate, the Namespace first.
    const keys = r.json.objects.map((o: any) => o.key);
    assert.ok(keys.indexOf('rocketchat/Secret/chat-tls') < keys.indexOf('rocketchat/Certificate/chat-tls'));
    assert.ok(keys.indexOf('_cluster/Namespace/rocketchat') < keys.indexOf('rocketchat/Secret/chat-tls'));
  });

  test('restoring again skips existing objects, per object', async () => {
    const r = await cli(['cluster-state', 'restore', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      r.json.objects.every((o: any) => o.result === 'skipped'),
      JSON.stringify(r.json.totals),
    );
  });

  test('--diff shows the changed field of a changed object; --existing=update puts it back', async () => {
    const cmPath = '/api/v1/namespaces/rocketchat/configmaps/rocketchat-config';
    await admin(kube).patch(cmPath, { data: { SITE_URL: 'https://changed.example.com' } });
    const secretPath = '/api/v1/namespaces/rocketchat/secrets/mongodb-auth';
    await admin(kube).patch(secretPath, {
      data: { 'mongodb-root-password': Buffer.from('other').toString('base64') },
    });
    const d = await cli(['cluster-state', 'restore', '--diff', '--json']);
    assert.equal(d.code, 0, d.stderr);
    const cm = d.json.objects.find((o: any) => o.key === 'rocketchat/ConfigMap/rocketchat-config');
    assert.deepEqual(cm.changes, [
      {
        path: 'data.SITE_URL',
        op: 'change',
        from: 'https://changed.example.com',
        to: 'https://chat.example.com',
      },
    ]);
    const sec = d.json.objects.find((o: any) => o.key === 'rocketchat/Secret/mongodb-auth');
    assert.deepEqual(sec.changes, [{ path: 'data.mongodb-root-password', op: 'change' }]);
    const untouched = d.json.objects.find((o: any) => o.key === 'rocketchat/Deployment/rocketchat');
    assert.deepEqual(untouched.changes, []);
    // The diff changed nothing.
    assert.equal((await live(cmPath)).data.SITE_URL, 'https://changed.example.com');
    const human = await cli(['cluster-state', 'restore', '--diff']);
    assert.match(
      human.stdout,
      /~ data\.SITE_URL: "https:\/\/changed\.example\.com" -> "https:\/\/chat\.example\.com"/,
    );
    assert.ok(
      !human.stdout.includes(MONGO_PASSWORD) &&
        !human.stdout.includes(Buffer.from(MONGO_PASSWORD).toString('base64')),
    );

    const u = await cli([
      'cluster-state',
      'restore',
      '--existing=update',
      '--include',
      'ConfigMap,Secret',
      '--json',
    ]);
    assert.equal(u.code, 0, u.stderr);
    assert.equal(
      u.json.objects.find((o: any) => o.key === 'rocketchat/ConfigMap/rocketchat-config').result,
      'updated',
    );
    assert.equal((await live(cmPath)).data.SITE_URL, 'https://chat.example.com');
    assert.equal(
      Buffer.from((await live(secretPath)).data['mongodb-root-password'], 'base64').toString(),
      MONGO_PASSWORD,
    );
  });

  test('restore into a mapped namespace moves objects, subjects and the Helm release', async () => {
    const r = await cli(['cluster-state', 'restore', '--namespace-map', 'rocketchat=rc-copy', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      r.json.objects.filter((o: any) => o.namespace === 'rc-copy').every((o: any) => o.result === 'created'),
    );
    const rb = await live('/apis/rbac.authorization.k8s.io/v1/namespaces/rc-copy/rolebindings/rocketchat');
    assert.equal(rb.subjects[0].namespace, 'rc-copy');
    const rel = await live('/api/v1/namespaces/rc-copy/secrets/sh.helm.release.v1.rocketchat.v2');
    assert.equal(decodeHelmRelease(rel.data.release).namespace, 'rc-copy');
    const cm = await live('/api/v1/namespaces/rc-copy/configmaps/rocketchat-config');
    assert.equal(cm.data.SITE_URL, 'https://chat.example.com');
  });

  test('--include and --exclude select kinds', async () => {
    const ex = await cli([
      'cluster-state',
      'backup',
      '--namespace',
      'rocketchat',
      '--exclude',
      'Secret',
      '--json',
    ]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.equal(ex.json.counts.Secret, undefined);
    assert.deepEqual(ex.json.helmReleases, []);
    assert.equal(ex.json.counts.ConfigMap, 1);
    const inc = await cli([
      'cluster-state',
      'backup',
      '--namespace',
      'rocketchat',
      '--include',
      'ConfigMap,Ingress',
      '--json',
    ]);
    assert.equal(inc.code, 0, inc.stderr);
    assert.deepEqual(Object.keys(inc.json.counts).sort(), ['ConfigMap', 'Ingress', 'Namespace']);
  });

  test('bad input fails with one clear line and changes nothing', async () => {
    const badMap = await cli(['cluster-state', 'restore', '--namespace-map', 'nosuch=x']);
    assert.notEqual(badMap.code, 0);
    assert.match(badMap.stderr, /--namespace-map names "nosuch", which is not in snapshot/);
    const badPolicy = await cli(['cluster-state', 'restore', '--existing', 'replace']);
    assert.notEqual(badPolicy.code, 0);
    assert.match(badPolicy.stderr, /--existing must be skip or update/);
    const noNs = await cli(['cluster-state', 'backup', '--namespace', 'nosuch']);
    assert.notEqual(noNs.code, 0);
    assert.match(noNs.stderr, /namespace "nosuch" does not exist/);
    const badCtx = await cli(['cluster-state', 'backup', '--context', 'nosuch']);
    assert.notEqual(badCtx.code, 0);
    assert.match(badCtx.stderr, /kubeconfig has no context "nosuch"/);
    assert.equal((await admin(kube).get('/api/v1/namespaces/x')).status, 404);
  });

  test('RBAC: no permission gives a clear error naming it; the shipped ClusterRole is enough', async () => {
    const nobody = await kube.serviceAccountToken('default', 'nobody');
    const cfg = await kube.writeKubeconfig(
      path.join(work.path, 'contexts.yaml'),
      [
        { name: 'nobody', token: nobody },
        { name: 'admin', token: kube.tokens.admin },
      ],
      'admin',
    );
    const denied = await cli([
      'cluster-state',
      'backup',
      '--namespace',
      'rocketchat',
      '--kubeconfig',
      cfg,
      '--context',
      'nobody',
    ]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /forbidden by RBAC: .*cannot get resource "namespaces"/);
    assert.match(denied.stderr, /deploy\/rbac\/lifeboat-clusterrole\.yaml/);
    assert.equal(denied.stderr.trim().split('\n').length, 1, 'one line');

    // Apply the shipped manifest (ClusterRole, ServiceAccount, binding) as an operator would.
    const lbCfg = await asShippedServiceAccount(kube, path.join(work.path, 'lifeboat.yaml'));
    const b = await cli([
      'cluster-state',
      'backup',
      '--namespace',
      'rocketchat',
      '--json',
      '--kubeconfig',
      lbCfg,
    ]);
    assert.equal(b.code, 0, b.stderr);
    const d = await cli(['cluster-state', 'restore', b.json.id, '--diff', '--json', '--kubeconfig', lbCfg]);
    assert.equal(
      d.code,
      0,
      d.stderr + JSON.stringify(d.json?.objects?.filter((o: any) => o.result === 'failed')),
    );
    const r = await cli([
      'cluster-state',
      'restore',
      b.json.id,
      '--namespace-map',
      'rocketchat=rc-lb',
      '--json',
      '--kubeconfig',
      lbCfg,
    ]);
    assert.equal(
      r.code,
      0,
      r.stderr + JSON.stringify(r.json?.objects?.filter((o: any) => o.result === 'failed')),
    );
    assert.ok(
      r.json.objects.filter((o: any) => o.namespace === 'rc-lb').every((o: any) => o.result === 'created'),
    );
  });
});
