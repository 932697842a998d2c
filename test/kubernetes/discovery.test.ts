/* eslint-disable @typescript-eslint/no-explicit-any -- API objects are untyped JSON in these tests */
/**
 * Needs: etcd + kube-apiserver with the CSI snapshot and cert-manager CRDs (test/env/kube.ts). No controllers
 * run; the test plays the namespace controller (test/env/kube-controllers.ts) and removes what it would.
 *
 * A namespace holding custom resources of two CRDs (cert-manager's, and a ServiceMonitor CRD this test
 * installs), RBAC including a ClusterRole bound to its ServiceAccount, Services of every type, a
 * StatefulSet with volumeClaimTemplates and its claim, a controller-owned Pod and an Event. Backed up
 * through discovery, then the namespace, the CRD and the cluster-scoped objects are deleted and the
 * snapshot restored into that empty state through the real CLI.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { runCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import { admin, deleteNamespace } from '../env/kube-controllers.ts';

const NS = 'shop';
const SM_CRD = 'servicemonitors.monitoring.coreos.com';

const serviceMonitorCrd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: SM_CRD },
  spec: {
    group: 'monitoring.coreos.com',
    scope: 'Namespaced',
    names: {
      plural: 'servicemonitors',
      singular: 'servicemonitor',
      kind: 'ServiceMonitor',
      listKind: 'ServiceMonitorList',
    },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
      },
    ],
  },
};

describe('cluster-state discovery backup and restore into an empty cluster state', () => {
  let kube: KubeTestCluster;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  const cli = (args: string[]) => runCli(args, { env });
  const a = () => admin(kube);
  const core = `/api/v1/namespaces/${NS}`;
  const smPath = `/apis/monitoring.coreos.com/v1/namespaces/${NS}/servicemonitors`;
  const crdPath = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
  const rbac = '/apis/rbac.authorization.k8s.io/v1';
  let nodePort = 0;

  const waitFor = async (what: string, fn: () => Promise<boolean>) => {
    for (let i = 0; i < 200; i++) {
      if (await fn()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what}: still not so after 20 s`);
  };

  before(async () => {
    kube = await startKube();
    work = await tempDir('lifeboat-k8s-disc-');
    env = {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'test-passphrase',
      KUBECONFIG: kube.kubeconfigPath,
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    };
    await a().post(crdPath, serviceMonitorCrd);
    await waitFor(
      'ServiceMonitor CRD served',
      async () => (await a().get(smPath.replace(`/namespaces/${NS}`, ''))).status === 200,
    );
    await a().post('/api/v1/namespaces', { metadata: { name: NS } });
    await a().post('/apis/storage.k8s.io/v1/storageclasses', {
      metadata: { name: 'fast' },
      provisioner: 'disk.csi.azure.com',
      volumeBindingMode: 'WaitForFirstConsumer',
    });
    await a().post('/apis/storage.k8s.io/v1/storageclasses', {
      metadata: { name: 'unused' },
      provisioner: 'x',
    });
    await a().post('/apis/networking.k8s.io/v1/ingressclasses', {
      metadata: { name: 'nginx' },
      spec: { controller: 'k8s.io/ingress-nginx' },
    });
    await a().post(`${core}/serviceaccounts`, { metadata: { name: 'shop' } });
    await a().post(`${rbac}/clusterroles`, {
      metadata: { name: 'shop-reader' },
      rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }],
    });
    await a().post(`${rbac}/clusterrolebindings`, {
      metadata: { name: 'shop-reader' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'shop-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'shop', namespace: NS }],
    });
    await a().post(`${rbac}/clusterrolebindings`, {
      metadata: { name: 'elsewhere' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'ServiceAccount', name: 'x', namespace: 'other' }],
    });
    await a().post(`${rbac}/namespaces/${NS}/roles`, {
      metadata: { name: 'shop' },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
    });
    await a().post(`${rbac}/namespaces/${NS}/rolebindings`, {
      metadata: { name: 'shop' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'shop' },
      subjects: [{ kind: 'ServiceAccount', name: 'shop', namespace: NS }],
    });
    const port = (name: string) => [{ name, port: 80, targetPort: 8080 }];
    await a().post(`${core}/services`, {
      metadata: { name: 'web' },
      spec: { selector: { app: 'web' }, ports: port('http') },
    });
    const np = await a().post(`${core}/services`, {
      metadata: { name: 'web-np' },
      spec: { type: 'NodePort', selector: { app: 'web' }, ports: port('http') },
    });
    nodePort = np.spec.ports[0].nodePort;
    await a().post(`${core}/services`, {
      metadata: { name: 'web-lb' },
      spec: { type: 'LoadBalancer', selector: { app: 'web' }, ports: port('http') },
    });
    await a().post(`${core}/services`, {
      metadata: { name: 'db' },
      spec: { clusterIP: 'None', selector: { app: 'db' }, ports: [{ port: 27017 }] },
    });
    await a().post(`${core}/services`, {
      metadata: { name: 'upstream' },
      spec: { type: 'ExternalName', externalName: 'api.example.com' },
    });
    await a().post(`${core}/services`, { metadata: { name: 'legacy' }, spec: { ports: [{ port: 5432 }] } });
    // Endpoints kept for the selector-less Service, left to the controller for the selector one.
    await a().post(`${core}/endpoints`, {
      metadata: { name: 'legacy' },
      subsets: [{ addresses: [{ ip: '10.1.2.3' }], ports: [{ port: 5432 }] }],
    });
    await a().post(`${core}/endpoints`, {
      metadata: { name: 'web' },
      subsets: [{ addresses: [{ ip: '10.1.2.4' }], ports: [{ name: 'http', port: 8080 }] }],
    });
    const sts = await a().post(`/apis/apps/v1/namespaces/${NS}/statefulsets`, {
      metadata: { name: 'db' },
      spec: {
        serviceName: 'db',
        replicas: 1,
        selector: { matchLabels: { app: 'db' } },
        template: {
          metadata: { labels: { app: 'db' } },
          spec: {
            containers: [
              { name: 'mongo', image: 'mongo:7', volumeMounts: [{ name: 'data', mountPath: '/data/db' }] },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data' },
            spec: {
              accessModes: ['ReadWriteOnce'],
              storageClassName: 'fast',
              resources: { requests: { storage: '1Gi' } },
            },
          },
        ],
      },
    });
    // What the StatefulSet controller would create: the claim of ordinal 0 and the Pod it owns.
    await a().post(`${core}/persistentvolumeclaims`, {
      metadata: { name: 'data-db-0', labels: { app: 'db' } },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: 'fast',
        resources: { requests: { storage: '1Gi' } },
      },
    });
    await a().post(`${core}/pods`, {
      metadata: {
        name: 'db-0',
        labels: { app: 'db' },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: sts.metadata.uid, controller: true },
        ],
      },
      spec: {
        serviceAccountName: 'shop',
        automountServiceAccountToken: false,
        containers: [{ name: 'mongo', image: 'mongo:7' }],
      },
    });
    await a().post(`${core}/events`, {
      metadata: { name: 'db.1' },
      involvedObject: { kind: 'StatefulSet', name: 'db', namespace: NS },
      reason: 'SuccessfulCreate',
      message: 'create Pod db-0',
    });
    await a().post(`/apis/networking.k8s.io/v1/namespaces/${NS}/ingresses`, {
      metadata: { name: 'web' },
      spec: {
        ingressClassName: 'nginx',
        rules: [
          {
            host: 'shop.example.com',
            http: {
              paths: [
                {
                  path: '/',
                  pathType: 'Prefix',
                  backend: { service: { name: 'web', port: { number: 80 } } },
                },
              ],
            },
          },
        ],
      },
    });
    await a().post(`/apis/cert-manager.io/v1/namespaces/${NS}/issuers`, {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Issuer',
      metadata: { name: 'selfsigned' },
      spec: { selfSigned: {} },
    });
    await a().post(`/apis/cert-manager.io/v1/namespaces/${NS}/certificates`, {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: 'shop-tls' },
      spec: {
        secretName: 'shop-tls',
        dnsNames: ['shop.example.com'],
        issuerRef: { name: 'selfsigned', kind: 'Issuer' },
      },
    });
    const db = (await a().get(`${core}/services/db`)).body;
    await a().post(smPath, {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: {
        name: 'db',
        ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'db', uid: db.metadata.uid }],
      },
      spec: { selector: { matchLabels: { app: 'db' } }, endpoints: [{ port: 'metrics' }] },
    });
    const init = await cli(['init', '--json']);
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await kube?.stop();
    await work?.cleanup();
  });

  let snapshotId = '';
  test('backup discovers custom resources, takes the cluster objects asked for, records what it skipped', async () => {
    const r = await cli(['cluster-state', 'backup', '-n', NS, '--include-cluster-resources', '--json']);
    assert.equal(r.code, 0, r.stderr);
    snapshotId = r.json.id;
    const c = r.json.counts;
    assert.equal(c.ServiceMonitor, 1, 'a custom resource no fixed list knows');
    assert.equal(c.Certificate, 1);
    assert.equal(c.Service, 6);
    assert.equal(c.Endpoints, 1, 'only the selector-less Service keeps its Endpoints');
    assert.equal(c.StatefulSet, 1);
    assert.equal(c.PersistentVolumeClaim, 1);
    assert.equal(c.Pod, undefined, "the Pod is the StatefulSet controller's");
    assert.equal(c.Event, undefined);
    assert.equal(c.CustomResourceDefinition, 3, 'ServiceMonitor, Certificate and Issuer CRDs');
    assert.equal(c.ClusterRole, 1);
    assert.equal(c.ClusterRoleBinding, 1, 'only the binding with a subject in the namespace');
    assert.equal(c.StorageClass, 1, 'only the class the claims use');
    assert.equal(c.IngressClass, 1);
    const skip = (resource: string) => r.json.skipped.filter((s: any) => s.resource === resource);
    assert.match(skip('events')[0].reason, /default exclusion/);
    assert.match(skip('endpointslices.discovery.k8s.io')[0].reason, /default exclusion/);
    const pods = skip('pods')[0];
    assert.equal(pods.count, 1);
    assert.deepEqual(pods.examples, ['db-0']);
    assert.match(pods.reason, /owned by StatefulSet db/);
    assert.match(skip('endpoints')[0].reason, /endpoints controller for Service web/);
  });

  test('--include-resources and --exclude-resources take group-qualified names', async () => {
    const ex = await cli([
      'cluster-state',
      'backup',
      '-n',
      NS,
      '--exclude-resources',
      `${SM_CRD},secrets`,
      '--json',
    ]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.equal(ex.json.counts.ServiceMonitor, undefined);
    assert.equal(ex.json.counts.CustomResourceDefinition, 2, 'no CRD for what was not taken');
    assert.equal(ex.json.counts.ClusterRole, undefined, 'cluster objects only when asked');
    assert.match(
      ex.json.skipped.find((s: any) => s.resource === SM_CRD).reason,
      /excluded by --exclude-resources/,
    );
    const inc = await cli([
      'cluster-state',
      'backup',
      '-n',
      NS,
      '--include-resources',
      'services,ingresses.networking.k8s.io,events',
      '--json',
    ]);
    assert.equal(inc.code, 0, inc.stderr);
    // The test's own Event is taken; kube-apiserver may record events of its own in the namespace (a CI
    // run under load saw a second one), so only the other kinds are counted exactly.
    const { Event: events, ...others } = inc.json.counts;
    assert.deepEqual(others, { Namespace: 1, Service: 6, Ingress: 1 });
    assert.ok(events >= 1, `events taken: ${events}`);
  });

  test('delete namespace, CRD and cluster objects; restore brings everything back, CRDs first', async () => {
    for (const p of [
      `${core}/pods/db-0`,
      `${core}/events/db.1`,
      `${core}/endpoints/legacy`,
      `${core}/endpoints/web`,
    ])
      await a().del(p);
    await deleteNamespace(kube, NS);
    await a().del(`${crdPath}/${SM_CRD}`);
    await waitFor(
      'ServiceMonitor CRD gone',
      async () => (await a().get(`${crdPath}/${SM_CRD}`)).status === 404,
    );
    for (const p of [
      `${rbac}/clusterroles/shop-reader`,
      `${rbac}/clusterrolebindings/shop-reader`,
      '/apis/storage.k8s.io/v1/storageclasses/fast',
      '/apis/networking.k8s.io/v1/ingressclasses/nginx',
    ])
      assert.equal((await a().del(p)).status, 200, p);

    const dry = await cli(['cluster-state', 'restore', snapshotId, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const dsm = dry.json.objects.find((o: any) => o.key === `${NS}/ServiceMonitor/db`);
    assert.equal(dsm.result, 'would-create');
    assert.match(dsm.reason, /CRD is created first/);
    assert.equal((await a().get(`${crdPath}/${SM_CRD}`)).status, 404, 'the dry run created nothing');

    const r = await cli(['cluster-state', 'restore', snapshotId, '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const failed = r.json.objects.filter((o: any) => o.result !== 'created' && o.result !== 'skipped');
    assert.deepEqual(failed, []);
    const byKey = new Map<string, any>(r.json.objects.map((o: any) => [o.key, o]));
    for (const key of [
      `_cluster/CustomResourceDefinition/${SM_CRD}`,
      `_cluster/Namespace/${NS}`,
      '_cluster/ClusterRole/shop-reader',
      '_cluster/ClusterRoleBinding/shop-reader',
      '_cluster/StorageClass/fast',
      '_cluster/IngressClass/nginx',
      `${NS}/ServiceMonitor/db`,
      `${NS}/Certificate/shop-tls`,
      `${NS}/StatefulSet/db`,
      `${NS}/PersistentVolumeClaim/data-db-0`,
      `${NS}/Endpoints/legacy`,
      `${NS}/Service/web-lb`,
      `${NS}/Service/upstream`,
    ])
      assert.equal(byKey.get(key)?.result, 'created', key);
    // The cert-manager CRDs were never deleted: reported, not touched.
    assert.equal(
      byKey.get('_cluster/CustomResourceDefinition/certificates.cert-manager.io').result,
      'skipped',
    );
    const keys = r.json.objects.map((o: any) => o.key);
    assert.ok(
      keys.indexOf(`_cluster/CustomResourceDefinition/${SM_CRD}`) < keys.indexOf(`_cluster/Namespace/${NS}`),
    );
    assert.ok(keys.indexOf(`${NS}/Service/db`) < keys.indexOf(`${NS}/ServiceMonitor/db`));
    assert.ok(keys.indexOf(`${NS}/Issuer/selfsigned`) < keys.indexOf(`${NS}/Certificate/shop-tls`));

    const sm = (await a().get(`${smPath}/db`)).body;
    assert.deepEqual(sm.spec, { selector: { matchLabels: { app: 'db' } }, endpoints: [{ port: 'metrics' }] });
    const db = (await a().get(`${core}/services/db`)).body;
    assert.equal(db.spec.clusterIP, 'None', 'headless stays headless');
    assert.deepEqual(
      sm.metadata.ownerReferences.map((o: any) => [o.kind, o.name, o.uid]),
      [['Service', 'db', db.metadata.uid]],
      'the ownerReference points at the restored Service',
    );
    assert.match(byKey.get(`${NS}/ServiceMonitor/db`).reason, /ownerReferences remapped to Service db/);
    const sts = (await a().get(`/apis/apps/v1/namespaces/${NS}/statefulsets/db`)).body;
    assert.equal(sts.spec.volumeClaimTemplates[0].spec.storageClassName, 'fast');
    const crb = (await a().get(`${rbac}/clusterrolebindings/shop-reader`)).body;
    assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: 'shop', namespace: NS }]);
    assert.equal((await a().get(`${core}/pods/db-0`)).status, 404, "owned Pods are the controller's to make");

    const again = await cli(['cluster-state', 'restore', snapshotId, '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(
      again.json.objects.every((o: any) => o.result === 'skipped' && /already exists/.test(o.reason)),
      JSON.stringify(again.json.totals),
    );
  });

  test('a Service keeps its nodePort only when asked', async () => {
    await a().del(`${core}/services/web-np`);
    const r = await cli([
      'cluster-state',
      'restore',
      snapshotId,
      '--include-resources',
      'services',
      '--preserve-node-ports',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.objects.find((o: any) => o.key === `${NS}/Service/web-np`).result, 'created');
    assert.equal((await a().get(`${core}/services/web-np`)).body.spec.ports[0].nodePort, nodePort);
  });

  test('--existing-resource-policy update applies the snapshot over a changed object', async () => {
    await a().patch(`${smPath}/db`, { spec: { endpoints: [{ port: 'other' }] } });
    const bad = await cli(['cluster-state', 'restore', snapshotId, '--existing-resource-policy', 'replace']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--existing-resource-policy must be none or update/);
    const r = await cli([
      'cluster-state',
      'restore',
      snapshotId,
      '--include-resources',
      SM_CRD,
      '--existing-resource-policy',
      'update',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.objects.find((o: any) => o.key === `${NS}/ServiceMonitor/db`).result, 'updated');
    assert.deepEqual((await a().get(`${smPath}/db`)).body.spec.endpoints, [{ port: 'metrics' }]);
  });
});
