/* eslint-disable @typescript-eslint/no-explicit-any -- API objects are untyped JSON in these tests */
/**
 * Needs: etcd + kube-apiserver (test/env/kube.ts; built by `npm test`'s pretest) with the CSI snapshot and
 * cert-manager CRDs. Proves the test API server is real and reachable through @kubernetes/client-node:
 * namespaces, custom resources, the status subresource, RBAC denial for a restricted identity.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { startKube, type KubeTestCluster } from '../env/kube.ts';

describe('test kube-apiserver', () => {
  let kube: KubeTestCluster;
  before(async () => {
    kube = await startKube({ users: [{ name: 'nobody' }] });
  });
  after(async () => {
    await kube?.stop();
  });

  test('namespaces can be created and read back through client-node with the written kubeconfig', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'probe', labels: { team: 'backup' } } } });
    const ns = await core.readNamespace({ name: 'probe' });
    assert.equal(ns.metadata?.labels?.team, 'backup');
    assert.ok(ns.metadata?.uid, 'the server assigned a uid');
  });

  test('a VolumeSnapshot is validated by the real CRD schema and its status can be set', async () => {
    const kc = kube.adminConfig();
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'snap' } } });
    const gv = {
      group: 'snapshot.storage.k8s.io',
      version: 'v1',
      namespace: 'snap',
      plural: 'volumesnapshots',
    };
    await custom.createNamespacedCustomObject({
      ...gv,
      body: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        metadata: { name: 'data-1' },
        spec: { source: { persistentVolumeClaimName: 'data' }, volumeSnapshotClassName: 'csi-azuredisk' },
      },
    });
    // The CRD's CEL rules reject a source naming both a PVC and a content: proof the schema is enforced.
    await assert.rejects(
      custom.createNamespacedCustomObject({
        ...gv,
        body: {
          apiVersion: 'snapshot.storage.k8s.io/v1',
          kind: 'VolumeSnapshot',
          metadata: { name: 'bad' },
          spec: { source: { persistentVolumeClaimName: 'data', volumeSnapshotContentName: 'c' } },
        },
      }),
      (e: unknown) => e instanceof ApiException && e.code === 422,
    );
    // Playing the snapshot controller: status is a subresource, written separately.
    const got = (await custom.getNamespacedCustomObject({ ...gv, name: 'data-1' })) as any;
    got.status = { readyToUse: true, restoreSize: '10Gi' };
    await custom.replaceNamespacedCustomObjectStatus({ ...gv, name: 'data-1', body: got });
    const again = (await custom.getNamespacedCustomObject({ ...gv, name: 'data-1' })) as any;
    assert.equal(again.status.readyToUse, true);
    assert.equal(again.status.restoreSize, '10Gi');
    assert.equal(again.spec.source.persistentVolumeClaimName, 'data');
  });

  test('cert-manager Certificates are served', async () => {
    const custom = kube.adminConfig().makeApiClient(CustomObjectsApi);
    const list = (await custom.listClusterCustomObject({
      group: 'cert-manager.io',
      version: 'v1',
      plural: 'certificates',
    })) as any;
    assert.deepEqual(list.items, []);
  });

  test('RBAC is enforced: an identity without bindings gets 403', async () => {
    const core = kube.configFor(kube.tokens.nobody).makeApiClient(CoreV1Api);
    await assert.rejects(core.listNamespace(), (e: unknown) => e instanceof ApiException && e.code === 403);
    const saCore = kube
      .configFor(await kube.serviceAccountToken('probe', 'limited'))
      .makeApiClient(CoreV1Api);
    await assert.rejects(
      saCore.listNamespacedSecret({ namespace: 'probe' }),
      (e: unknown) => e instanceof ApiException && e.code === 403,
    );
  });
});
