/** Needs: nothing (pure logic of the Kubernetes source: Helm decoding, stripping, ordering, planning). */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import {
  decodeHelmRelease,
  encodeHelmRelease,
  releaseHistories,
  type HelmRelease,
} from '../../src/sources/kubernetes/helm.ts';
import {
  canonicalJson,
  mapNamespace,
  parseNamespaceMap,
  stripObject,
  isGenerated,
  actionsFor,
  prepareForRestore,
  type KubeObject,
} from '../../src/sources/kubernetes/objects.ts';
import {
  clusterDependencies,
  matches,
  objectExclusion,
  selectResource,
} from '../../src/sources/kubernetes/resources.ts';
import { DEFAULT_PRIORITIES, sortForRestore } from '../../src/sources/kubernetes/order.ts';
import { diffObjects, formatChange, planRestore } from '../../src/sources/kubernetes/diff.ts';
import { isLifeboatError } from '../../src/core/errors.ts';

const release = (version: number, status = 'deployed'): HelmRelease => ({
  name: 'rocketchat',
  namespace: 'rocketchat',
  version,
  info: { status, last_deployed: `2024-12-0${version}T12:00:00Z` },
  chart: { metadata: { name: 'rocketchat', version: `6.${version}.0`, appVersion: '7.0.0' } },
  config: { mongodb: { auth: { passwords: ['s3cret'] } } },
  manifest: '---\nkind: Deployment\n',
});

describe('Helm release decoding', () => {
  test('decodes base64(base64(gzip(json))) the way Helm writes it', () => {
    const helmText = gzipSync(Buffer.from(JSON.stringify(release(3)))).toString('base64');
    const apiData = Buffer.from(helmText).toString('base64');
    const r = decodeHelmRelease(apiData);
    assert.equal(r.version, 3);
    assert.equal(r.chart?.metadata?.version, '6.3.0');
    assert.deepEqual(r.config, { mongodb: { auth: { passwords: ['s3cret'] } } });
  });

  test('accepts releases written without gzip (no 1f 8b 08 magic)', () => {
    const apiData = Buffer.from(Buffer.from(JSON.stringify(release(1))).toString('base64')).toString(
      'base64',
    );
    assert.equal(decodeHelmRelease(apiData).version, 1);
  });

  test('encode is the inverse of decode', () => {
    assert.deepEqual(decodeHelmRelease(encodeHelmRelease(release(2))), release(2));
  });

  test('garbage is an INTEGRITY error naming the Secret', () => {
    assert.throws(
      () =>
        decodeHelmRelease(Buffer.from('not helm').toString('base64'), 'Secret rc/sh.helm.release.v1.x.v1'),
      (e: unknown) =>
        isLifeboatError(e, 'INTEGRITY') && /Secret rc\/sh\.helm\.release\.v1\.x\.v1/.test(e.message),
    );
  });

  test('histories group revisions per release; current is the highest', () => {
    const secret = (r: HelmRelease) => ({
      type: 'helm.sh/release.v1',
      metadata: { name: `sh.helm.release.v1.${r.name}.v${r.version}`, namespace: r.namespace },
      data: { release: encodeHelmRelease(r) },
    });
    const other = { type: 'Opaque', metadata: { name: 'x', namespace: 'rocketchat' }, data: { a: 'YQ==' } };
    const h = releaseHistories([secret(release(2)), other, secret(release(1, 'superseded'))]);
    assert.equal(h.length, 1);
    assert.equal(h[0].current.revision, 2);
    assert.equal(h[0].current.chartVersion, '6.2.0');
    assert.deepEqual(
      h[0].revisions.map((r) => [r.revision, r.status]),
      [
        [1, 'superseded'],
        [2, 'deployed'],
      ],
    );
  });
});

const live = (
  kind: string,
  extra: Record<string, unknown> = {},
  meta: Record<string, unknown> = {},
): KubeObject => ({
  apiVersion: 'v1',
  kind,
  metadata: {
    name: 'x',
    namespace: 'rocketchat',
    uid: '1234',
    resourceVersion: '99',
    generation: 3,
    creationTimestamp: '2024-01-01T00:00:00Z',
    managedFields: [{}],
    ownerReferences: [{ kind: 'Certificate' }],
    annotations: { 'deployment.kubernetes.io/revision': '4', keep: 'me' },
    ...meta,
  },
  status: { phase: 'Bound' },
  ...extra,
});

describe('stripping server-managed fields', () => {
  test('removes server metadata and status, keeps user annotations', () => {
    const s = stripObject(live('ConfigMap', { data: { a: '1' } }));
    assert.deepEqual(s, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'x', namespace: 'rocketchat', annotations: { keep: 'me' } },
      data: { a: '1' },
    });
  });

  test('Services lose assigned IPs and node ports but keep headless None', () => {
    const svc = stripObject(
      live('Service', {
        spec: {
          type: 'NodePort',
          clusterIP: '10.0.0.5',
          clusterIPs: ['10.0.0.5'],
          ports: [{ port: 80, nodePort: 31000 }],
        },
      }),
    );
    assert.deepEqual(svc.spec, { type: 'NodePort', ports: [{ port: 80 }] });
    const headless = stripObject(live('Service', { spec: { clusterIP: 'None', clusterIPs: ['None'] } }));
    assert.deepEqual(headless.spec, { clusterIP: 'None', clusterIPs: ['None'] });
  });

  test('PVCs lose the bound volume and binder annotations', () => {
    const pvc = stripObject(
      live(
        'PersistentVolumeClaim',
        { spec: { volumeName: 'pv-1', resources: { requests: { storage: '1Gi' } } } },
        {
          annotations: {
            'pv.kubernetes.io/bind-completed': 'yes',
            'volume.kubernetes.io/selected-node': 'n1',
          },
        },
      ),
    );
    assert.deepEqual(pvc.spec, { resources: { requests: { storage: '1Gi' } } });
    assert.equal(pvc.metadata.annotations, undefined);
  });

  test('is idempotent and does not modify its input', () => {
    const input = live('Service', { spec: { clusterIP: '10.0.0.1' } });
    const before = canonicalJson(input);
    const once = stripObject(input);
    assert.equal(canonicalJson(input), before);
    assert.deepEqual(stripObject(once), once);
  });

  test('generated objects are recognised', () => {
    assert.ok(
      isGenerated({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'kube-root-ca.crt', namespace: 'a' },
      }),
    );
    assert.ok(
      isGenerated({
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/service-account-token',
        metadata: { name: 't', namespace: 'a' },
      }),
    );
    assert.ok(
      !isGenerated({
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: { name: 't', namespace: 'a' },
      }),
    );
  });

  test('canonical JSON does not depend on key order', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [{ y: 1, x: 2 }], c: 0 } }),
      canonicalJson({ a: { c: 0, d: [{ x: 2, y: 1 }] }, b: 1 }),
    );
  });
});

describe('namespace map', () => {
  test('parses a=b and rejects bad input with a usage error', () => {
    assert.deepEqual(
      [...parseNamespaceMap(['rocketchat=rc2', 'a=b'])],
      [
        ['rocketchat', 'rc2'],
        ['a', 'b'],
      ],
    );
    for (const bad of ['rocketchat', 'a=', 'A=b', 'a=b=c']) {
      assert.throws(
        () => parseNamespaceMap([bad]),
        (e: unknown) => isLifeboatError(e, 'USAGE'),
        bad,
      );
    }
    assert.throws(
      () => parseNamespaceMap(['a=b', 'a=c']),
      (e: unknown) => isLifeboatError(e, 'USAGE'),
    );
  });

  test('moves objects, Namespaces, ServiceAccount subjects and Helm releases', () => {
    const map = parseNamespaceMap(['rocketchat=rc2']);
    const ns = mapNamespace({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'rocketchat' } }, map);
    assert.equal(ns.metadata.name, 'rc2');
    const rb = mapNamespace(
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'r', namespace: 'rocketchat' },
        subjects: [
          { kind: 'ServiceAccount', name: 'app', namespace: 'rocketchat' },
          { kind: 'User', name: 'bob' },
        ],
      },
      map,
    );
    assert.equal(rb.metadata.namespace, 'rc2');
    assert.deepEqual(rb.subjects, [
      { kind: 'ServiceAccount', name: 'app', namespace: 'rc2' },
      { kind: 'User', name: 'bob' },
    ]);
    const sec = mapNamespace(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'helm.sh/release.v1',
        metadata: { name: 'sh.helm.release.v1.rocketchat.v1', namespace: 'rocketchat' },
        data: { release: encodeHelmRelease(release(1)) },
      },
      map,
    );
    assert.equal(sec.metadata.namespace, 'rc2');
    assert.equal(decodeHelmRelease((sec.data as { release: string }).release).namespace, 'rc2');
    const other = mapNamespace(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'keep' } },
      map,
    );
    assert.equal(other.metadata.namespace, 'keep');
  });
});

describe('restore order', () => {
  test('follows DEFAULT_PRIORITIES by group-qualified resource, unknown kinds last, stable by key', () => {
    const o = (apiVersion: string, kind: string, name: string, namespace?: string) => ({
      apiVersion,
      kind,
      metadata: { name, namespace },
    });
    const sorted = sortForRestore([
      o('networking.k8s.io/v1', 'Ingress', 'web', 'rc'),
      o('example.com/v1', 'Widget', 'w', 'rc'),
      o('cert-manager.io/v1', 'Certificate', 'tls', 'rc'),
      o('v1', 'Secret', 'tls', 'rc'),
      o('apps/v1', 'Deployment', 'rc', 'rc'),
      o('v1', 'Namespace', 'rc'),
      o('apiextensions.k8s.io/v1', 'CustomResourceDefinition', 'certificates.cert-manager.io'),
      o('v1', 'Secret', 'a', 'rc'),
      o('v1', 'PersistentVolumeClaim', 'data', 'rc'),
      // Same kind name in another group: not the core Secret's place.
      o('example.com/v1', 'Secret', 'x', 'rc'),
    ]);
    assert.deepEqual(
      sorted.map((x) => `${x.kind}/${x.metadata.name}`),
      [
        'CustomResourceDefinition/certificates.cert-manager.io',
        'Namespace/rc',
        'PersistentVolumeClaim/data',
        'Secret/a',
        'Secret/tls',
        'Certificate/tls',
        'Deployment/rc',
        'Ingress/web',
        'Secret/x',
        'Widget/w',
      ],
    );
    assert.ok(
      DEFAULT_PRIORITIES.indexOf('secrets') < DEFAULT_PRIORITIES.indexOf('certificates.cert-manager.io'),
      'cert-manager Secrets before Certificates',
    );
  });

  test('configured priorities replace the default, CRDs and Namespaces stay first', () => {
    const o = (apiVersion: string, kind: string, name: string, namespace?: string) => ({
      apiVersion,
      kind,
      metadata: { name, namespace },
    });
    const sorted = sortForRestore(
      [
        o('v1', 'ConfigMap', 'c', 'rc'),
        o('monitoring.coreos.com/v1', 'ServiceMonitor', 'sm', 'rc'),
        o('v1', 'Namespace', 'rc'),
        o('apiextensions.k8s.io/v1', 'CustomResourceDefinition', 'servicemonitors.monitoring.coreos.com'),
        o('v1', 'Secret', 's', 'rc'),
      ],
      ['servicemonitors.monitoring.coreos.com', 'secrets'],
    );
    assert.deepEqual(
      sorted.map((x) => x.kind),
      ['CustomResourceDefinition', 'Namespace', 'ServiceMonitor', 'Secret', 'ConfigMap'],
    );
  });
});

describe('restore planning and diff', () => {
  const cm = (data: Record<string, string>, name = 'cfg'): KubeObject => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: 'rc' },
    data,
  });

  test('creates what is missing, skips or updates what exists by policy', () => {
    const liveMap = new Map([['rc/ConfigMap/cfg', cm({ a: '1' })]]);
    const desired = [cm({ a: '2' }), cm({ b: '1' }, 'new')];
    assert.deepEqual(
      planRestore(desired, liveMap, 'none').map((p) => [p.name, p.action]),
      [
        ['cfg', 'skip'],
        ['new', 'create'],
      ],
    );
    assert.deepEqual(
      planRestore(desired, liveMap, 'update').map((p) => [p.name, p.action]),
      [
        ['cfg', 'update'],
        ['new', 'create'],
      ],
    );
  });

  test('diff lists changed, added and removed paths and ignores server noise', () => {
    const a = {
      ...cm({ SITE_URL: 'https://old', KEEP: 'x', GONE: '1' }),
      metadata: { name: 'cfg', namespace: 'rc', resourceVersion: '1' },
    };
    const b = {
      ...cm({ SITE_URL: 'https://new', KEEP: 'x', NEW: '2' }),
      metadata: { name: 'cfg', namespace: 'rc', resourceVersion: '7' },
    };
    const changes = diffObjects(a, b);
    assert.deepEqual(changes.map(formatChange).sort(), [
      '+ data.NEW = "2"',
      '- data.GONE (was "1")',
      '~ data.SITE_URL: "https://old" -> "https://new"',
    ]);
    assert.deepEqual(diffObjects(a, a), []);
  });

  test('Secret diffs name the keys but never the values', () => {
    const s = (v: string): KubeObject => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's', namespace: 'rc' },
      data: { password: Buffer.from(v).toString('base64') },
    });
    const changes = diffObjects(s('old-pass'), s('new-pass'));
    assert.deepEqual(changes, [{ path: 'data.password', op: 'change' }]);
    const printed = changes.map(formatChange).join('\n');
    assert.ok(!printed.includes(Buffer.from('old-pass').toString('base64')) && !printed.includes('new-pass'));
  });
});

describe('PVC snapshot choices', async () => {
  const { chooseSnapshotClass, expiredSnapshots, owningWorkload, quantityBytes, parseTimestampLabel } =
    await import('../../src/sources/kubernetes/pvc.ts');
  const pvc = (annotations: Record<string, string> = {}): KubeObject => ({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: 'datadir-mongodb-0', namespace: 'rc', annotations },
  });
  const cls = (
    name: string,
    driver: string,
    extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {},
  ): KubeObject => ({
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshotClass',
    metadata: { name, ...extra },
    driver,
  });
  const classes = [
    cls('other-default', 'ebs.csi.aws.com', {
      annotations: { 'snapshot.storage.kubernetes.io/is-default-class': 'true' },
    }),
    cls('azure-default', 'disk.csi.azure.com', {
      annotations: { 'snapshot.storage.kubernetes.io/is-default-class': 'true' },
    }),
    cls('azure-lifeboat', 'disk.csi.azure.com', { labels: { 'lifeboat.io/snapshot-class': 'true' } }),
    cls('azure-plain', 'disk.csi.azure.com'),
  ];

  test('class: PVC annotation, then Lifeboat label, then the driver default; clear errors otherwise', () => {
    assert.equal(
      chooseSnapshotClass(
        pvc({ 'lifeboat.io/snapshot-class': 'azure-plain' }),
        'disk.csi.azure.com',
        classes,
      ),
      'azure-plain',
    );
    assert.equal(chooseSnapshotClass(pvc(), 'disk.csi.azure.com', classes), 'azure-lifeboat');
    assert.equal(chooseSnapshotClass(pvc(), 'disk.csi.azure.com', classes.slice(0, 2)), 'azure-default');
    assert.throws(
      () => chooseSnapshotClass(pvc(), 'disk.csi.azure.com', classes.slice(0, 1)),
      (e: unknown) =>
        isLifeboatError(e, 'NOT_FOUND') &&
        /no VolumeSnapshotClass for driver disk\.csi\.azure\.com/.test(e.message),
    );
    assert.throws(
      () =>
        chooseSnapshotClass(
          pvc({ 'lifeboat.io/snapshot-class': 'other-default' }),
          'disk.csi.azure.com',
          classes,
        ),
      (e: unknown) => isLifeboatError(e, 'CONFIG'),
    );
    assert.throws(
      () =>
        chooseSnapshotClass(pvc({ 'lifeboat.io/snapshot-class': 'missing' }), 'disk.csi.azure.com', classes),
      (e: unknown) => isLifeboatError(e, 'NOT_FOUND'),
    );
  });

  test('owning workload via StatefulSet claim templates or pod volumes', () => {
    const sts: KubeObject = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'mongodb', namespace: 'rc' },
      spec: { volumeClaimTemplates: [{ metadata: { name: 'datadir' } }] },
    };
    const dep: KubeObject = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'uploads', namespace: 'rc' },
      spec: { template: { spec: { volumes: [{ persistentVolumeClaim: { claimName: 'files' } }] } } },
    };
    assert.deepEqual(owningWorkload(pvc(), [dep, sts]), { kind: 'StatefulSet', name: 'mongodb' });
    assert.deepEqual(owningWorkload({ ...pvc(), metadata: { name: 'files', namespace: 'rc' } }, [sts, dep]), {
      kind: 'Deployment',
      name: 'uploads',
    });
    assert.equal(
      owningWorkload({ ...pvc(), metadata: { name: 'datadir-mongodb-0', namespace: 'other' } }, [sts]),
      undefined,
    );
  });

  test('retention only selects old snapshots Lifeboat made', () => {
    const vs = (name: string, ts: string, ours = true): KubeObject => ({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: {
        name,
        namespace: 'rc',
        labels: {
          'lifeboat.io/timestamp': ts,
          ...(ours ? { 'app.kubernetes.io/managed-by': 'lifeboat' } : {}),
        },
      },
    });
    const now = parseTimestampLabel('20241215_120000')!;
    const all = [
      vs('new', '20241214_120000'),
      vs('old', '20241201_120000'),
      vs('foreign', '20241101_000000', false),
      vs('kept', '20241101_000000'),
      vs('edge', '20241208_120001'),
    ];
    assert.deepEqual(
      expiredSnapshots(all, 7, now, new Set(['rc/kept'])).map((s) => s.metadata.name),
      ['old'],
    );
  });

  test('storage quantities', () => {
    assert.equal(quantityBytes('2Gi'), 2 * 2 ** 30);
    assert.equal(quantityBytes('500M'), 5e8);
    assert.ok(quantityBytes('10Gi') > quantityBytes('10G'));
    assert.throws(
      () => quantityBytes('ten'),
      (e: unknown) => isLifeboatError(e, 'USAGE'),
    );
  });
});

describe('restore actions (objects.ts RESTORE_ACTIONS)', () => {
  test('every action applies to the kinds it declares and nothing else', () => {
    const svc: KubeObject = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 's', namespace: 'rc' },
      spec: { type: 'NodePort', clusterIP: '10.0.0.9', ports: [{ port: 80, nodePort: 31000 }] },
    };
    assert.deepEqual(
      actionsFor(svc).map((a) => a.name),
      ['owner-references', 'service-addresses'],
    );
    // A kind of the same name in another group is not the core Service.
    assert.deepEqual(
      actionsFor({ ...svc, apiVersion: 'example.com/v1' }).map((a) => a.name),
      ['owner-references'],
    );
    const kept = prepareForRestore(svc, { preserveNodePorts: true });
    assert.ok('object' in kept);
    assert.deepEqual(kept.object.spec, { type: 'NodePort', ports: [{ port: 80, nodePort: 31000 }] });
  });

  test('a PV that was bound is never recreated; an unbound one is', () => {
    const pv = (claimRef?: unknown): KubeObject => ({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'pv-1' },
      spec: { capacity: { storage: '1Gi' }, ...(claimRef ? { claimRef } : {}) },
    });
    const bound = prepareForRestore(pv({ namespace: 'rc', name: 'data' }));
    assert.ok('skip' in bound && /bound to claim rc\/data/.test(bound.skip));
    assert.ok('object' in prepareForRestore(pv()));
  });

  test('ownerReferences are taken off (the apply step remaps them); ACME Orders are refused', () => {
    const cm: KubeObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'c',
        namespace: 'rc',
        ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 's', uid: 'old' }],
      },
    };
    const r = prepareForRestore(cm);
    assert.ok('object' in r);
    assert.equal(r.object.metadata.ownerReferences, undefined);
    assert.deepEqual(r.notes, ['ownerReferences: 1']);
    const order = prepareForRestore({
      apiVersion: 'acme.cert-manager.io/v1',
      kind: 'Order',
      metadata: { name: 'o', namespace: 'rc' },
    });
    assert.ok('skip' in order);
  });
});

describe('resource selection (resources.ts)', () => {
  const res = (resource: string, group: string, kind: string, verbs = ['get', 'list']) => ({
    resource,
    group,
    kind,
    verbs,
  });
  const none = { include: [], exclude: [] };

  test('default exclusions apply unless named; a wildcard does not name them', () => {
    const events = res('events', '', 'Event');
    assert.equal(selectResource(events, none).selected, false);
    assert.equal(selectResource(events, { include: ['*'], exclude: [] }).selected, false);
    assert.equal(selectResource(events, { include: ['events'], exclude: [] }).selected, true);
    assert.equal(selectResource(res('bindings', '', 'Binding', ['create']), none).selected, false);
  });

  test('group-qualified names; a bare core name does not reach other groups', () => {
    const ing = res('ingresses', 'networking.k8s.io', 'Ingress');
    assert.ok(matches('ingresses.networking.k8s.io', ing));
    assert.ok(matches('Ingress', ing));
    assert.ok(!matches('ingresses.extensions', ing));
    const core = new Set(['secrets', 'secret']);
    const other = res('secrets', 'example.com', 'Secret');
    assert.equal(selectResource(other, { include: [], exclude: ['secrets'] }, core).selected, true);
    assert.equal(
      selectResource(other, { include: [], exclude: ['secrets.example.com'] }, core).selected,
      false,
    );
  });

  test('controller-owned Pods and the Endpoints of selector Services are left out, with why', () => {
    const pod: KubeObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'p',
        namespace: 'rc',
        ownerReferences: [{ kind: 'ReplicaSet', name: 'rs', controller: true }],
      },
    };
    assert.match(objectExclusion(pod, [])!, /owned by ReplicaSet rs/);
    assert.equal(objectExclusion({ ...pod, metadata: { name: 'bare', namespace: 'rc' } }, []), undefined);
    const ep: KubeObject = {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'web', namespace: 'rc' },
    };
    const svc = (selector?: object): KubeObject => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'rc' },
      spec: selector ? { selector } : {},
    });
    assert.match(objectExclusion(ep, [svc({ app: 'web' })])!, /endpoints controller/);
    assert.equal(objectExclusion(ep, [svc()]), undefined);
  });

  test('cluster dependencies: bindings of the namespaces, the classes they use', () => {
    const o = (kind: string, name: string, extra: object = {}, namespace?: string): KubeObject => ({
      apiVersion: 'v1',
      kind,
      metadata: { name, ...(namespace ? { namespace } : {}) },
      ...extra,
    });
    const cluster = [
      o('ClusterRoleBinding', 'ours', {
        roleRef: { kind: 'ClusterRole', name: 'reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'sa', namespace: 'rc' }],
      }),
      o('ClusterRoleBinding', 'theirs', {
        roleRef: { kind: 'ClusterRole', name: 'admin' },
        subjects: [{ kind: 'ServiceAccount', name: 'sa', namespace: 'other' }],
      }),
      o('ClusterRole', 'reader'),
      o('ClusterRole', 'admin'),
      o('StorageClass', 'fast'),
      o('StorageClass', 'slow'),
    ];
    const kept = clusterDependencies(
      [o('PersistentVolumeClaim', 'd', { spec: { storageClassName: 'fast' } }, 'rc')],
      ['rc'],
      cluster,
    );
    assert.deepEqual([...kept.keys()].map((x) => `${x.kind}/${x.metadata.name}`).sort(), [
      'ClusterRole/reader',
      'ClusterRoleBinding/ours',
      'StorageClass/fast',
    ]);
  });
});
