/** A Rocket.Chat-like namespace on the test API server (objects only: no controllers run, see kube.ts). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { encodeHelmRelease } from '../../src/sources/kubernetes/helm.ts';
import type { KubeTestCluster } from './kube.ts';
import { admin } from './kube-controllers.ts';
import { PROJECT_ROOT } from './index.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
export const MONGO_PASSWORD = 'rc-mongo-p4ssw0rd-never-printed';

export function helmReleaseSecret(ns: string, version: number, status: string) {
  const release = {
    name: 'rocketchat',
    namespace: ns,
    version,
    info: {
      status,
      first_deployed: '2024-11-01T10:00:00Z',
      last_deployed: `2024-12-0${version}T10:00:00Z`,
      description: 'Install complete',
    },
    chart: {
      metadata: { name: 'rocketchat', version: `6.${version}.0`, appVersion: '6.12.0' },
      values: { replicaCount: 1 },
    },
    config: { replicaCount: 2, mongodb: { auth: { passwords: [MONGO_PASSWORD] } } },
    manifest: '---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: rocketchat\n',
  };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'helm.sh/release.v1',
    metadata: {
      name: `sh.helm.release.v1.rocketchat.v${version}`,
      labels: { name: 'rocketchat', owner: 'helm', status, version: String(version) },
    },
    data: { release: encodeHelmRelease(release) },
  };
}

export async function createRocketChat(kube: KubeTestCluster, ns = 'rocketchat'): Promise<void> {
  const a = admin(kube);
  const core = `/api/v1/namespaces/${ns}`;
  const apps = `/apis/apps/v1/namespaces/${ns}`;
  await a.post('/api/v1/namespaces', { metadata: { name: ns, labels: { team: 'chat' } } });
  await a.post(`${core}/secrets`, helmReleaseSecret(ns, 1, 'superseded'));
  await a.post(`${core}/secrets`, helmReleaseSecret(ns, 2, 'deployed'));
  await a.post(`${core}/secrets`, {
    metadata: { name: 'mongodb-auth' },
    type: 'Opaque',
    data: { 'mongodb-root-password': b64(MONGO_PASSWORD) },
  });
  await a.post(`${core}/secrets`, {
    metadata: { name: 'chat-tls', annotations: { 'cert-manager.io/certificate-name': 'chat-tls' } },
    type: 'kubernetes.io/tls',
    data: {
      'tls.crt': b64('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'),
      'tls.key': b64('key'),
    },
  });
  await a.post(`${core}/configmaps`, {
    metadata: { name: 'rocketchat-config' },
    data: { SITE_URL: 'https://chat.example.com', OVERWRITE_SETTING_Show_Setup_Wizard: 'completed' },
  });
  await a.post(`${core}/serviceaccounts`, { metadata: { name: 'rocketchat' } });
  await a.post(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
    metadata: { name: 'rocketchat' },
    rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
  });
  await a.post(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
    metadata: { name: 'rocketchat' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'rocketchat' },
    subjects: [{ kind: 'ServiceAccount', name: 'rocketchat', namespace: ns }],
  });
  await a.post(`${core}/services`, {
    metadata: { name: 'mongodb-headless' },
    spec: { clusterIP: 'None', selector: { app: 'mongodb' }, ports: [{ port: 27017 }] },
  });
  await a.post(`${core}/services`, {
    metadata: { name: 'rocketchat' },
    spec: { selector: { app: 'rocketchat' }, ports: [{ port: 80, targetPort: 3000 }] },
  });
  await a.post(`${apps}/statefulsets`, {
    metadata: { name: 'mongodb' },
    spec: {
      serviceName: 'mongodb-headless',
      replicas: 1,
      selector: { matchLabels: { app: 'mongodb' } },
      template: {
        metadata: { labels: { app: 'mongodb' } },
        spec: {
          containers: [
            {
              name: 'mongodb',
              image: 'mongo:7.0',
              volumeMounts: [{ name: 'datadir', mountPath: '/data/db' }],
            },
          ],
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'datadir' },
          spec: {
            accessModes: ['ReadWriteOnce'],
            storageClassName: 'managed-csi',
            resources: { requests: { storage: '1Gi' } },
          },
        },
      ],
    },
  });
  await a.post(`${core}/persistentvolumeclaims`, {
    metadata: { name: 'datadir-mongodb-0', labels: { app: 'mongodb' } },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'managed-csi',
      resources: { requests: { storage: '1Gi' } },
    },
  });
  await a.post(`${apps}/deployments`, {
    metadata: {
      name: 'rocketchat',
      labels: { 'app.kubernetes.io/managed-by': 'Helm' },
      annotations: { 'meta.helm.sh/release-name': 'rocketchat' },
    },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'rocketchat' } },
      template: {
        metadata: { labels: { app: 'rocketchat' } },
        spec: {
          serviceAccountName: 'rocketchat',
          containers: [
            {
              name: 'rocketchat',
              image: 'rocketchat/rocket.chat:6.12.0',
              envFrom: [{ configMapRef: { name: 'rocketchat-config' } }],
            },
          ],
        },
      },
    },
  });
  await a.post(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses`, {
    metadata: { name: 'rocketchat', annotations: { 'cert-manager.io/cluster-issuer': 'letsencrypt' } },
    spec: {
      tls: [{ hosts: ['chat.example.com'], secretName: 'chat-tls' }],
      rules: [
        {
          host: 'chat.example.com',
          http: {
            paths: [
              {
                path: '/',
                pathType: 'Prefix',
                backend: { service: { name: 'rocketchat', port: { number: 80 } } },
              },
            ],
          },
        },
      ],
    },
  });
  await a.post(`/apis/cert-manager.io/v1/namespaces/${ns}/issuers`, {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Issuer',
    metadata: { name: 'selfsigned' },
    spec: { selfSigned: {} },
  });
  await a.post(`/apis/cert-manager.io/v1/namespaces/${ns}/certificates`, {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name: 'chat-tls' },
    spec: {
      secretName: 'chat-tls',
      dnsNames: ['chat.example.com'],
      issuerRef: { name: 'selfsigned', kind: 'Issuer' },
    },
  });
}

/** Paths of the objects createRocketChat makes, for equality checks. */
export function rocketChatObjectPaths(ns: string): string[] {
  const core = `/api/v1/namespaces/${ns}`;
  const apps = `/apis/apps/v1/namespaces/${ns}`;
  return [
    `${core}/secrets/sh.helm.release.v1.rocketchat.v1`,
    `${core}/secrets/sh.helm.release.v1.rocketchat.v2`,
    `${core}/secrets/mongodb-auth`,
    `${core}/secrets/chat-tls`,
    `${core}/configmaps/rocketchat-config`,
    `${core}/serviceaccounts/rocketchat`,
    `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles/rocketchat`,
    `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings/rocketchat`,
    `${core}/services/mongodb-headless`,
    `${core}/services/rocketchat`,
    `${apps}/statefulsets/mongodb`,
    `${core}/persistentvolumeclaims/datadir-mongodb-0`,
    `${apps}/deployments/rocketchat`,
    `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/rocketchat`,
    `/apis/cert-manager.io/v1/namespaces/${ns}/issuers/selfsigned`,
    `/apis/cert-manager.io/v1/namespaces/${ns}/certificates/chat-tls`,
  ];
}

/**
 * Applies the shipped least-privilege RBAC (deploy/rbac/lifeboat-clusterrole.yaml: ClusterRole,
 * ServiceAccount, binding) as an operator would, and writes a kubeconfig to `file` that acts as that
 * ServiceAccount (its context's namespace `namespace`, if given). Returns the kubeconfig path.
 */
export async function asShippedServiceAccount(
  kube: KubeTestCluster,
  file: string,
  namespace?: string,
): Promise<string> {
  const a = admin(kube);
  await a.post('/api/v1/namespaces', { metadata: { name: 'lifeboat' } });
  const docs = YAML.parseAllDocuments(
    await readFile(path.join(PROJECT_ROOT, 'deploy/rbac/lifeboat-clusterrole.yaml'), 'utf8'),
  ).map((d) => d.toJS());
  await a.post(
    '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    docs.find((d) => d.kind === 'ClusterRole'),
  );
  await a.post(
    '/api/v1/namespaces/lifeboat/serviceaccounts',
    docs.find((d) => d.kind === 'ServiceAccount'),
  );
  await a.post(
    '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
    docs.find((d) => d.kind === 'ClusterRoleBinding'),
  );
  const token = await kube.serviceAccountToken('lifeboat', 'lifeboat');
  return kube.writeKubeconfig(
    file,
    [{ name: 'lifeboat', token, ...(namespace ? { namespace } : {}) }],
    'lifeboat',
  );
}

/**
 * AKS's disk StorageClass `managed-csi` and its default VolumeSnapshotClass `csi-azuredisk-vsc`, as the
 * PVC layer expects them (docs/kubernetes.md).
 */
export async function createAzureDiskClasses(
  kube: KubeTestCluster,
  deletionPolicy: 'Delete' | 'Retain' = 'Delete',
): Promise<void> {
  const a = admin(kube);
  await a.post('/apis/storage.k8s.io/v1/storageclasses', {
    metadata: { name: 'managed-csi' },
    provisioner: 'disk.csi.azure.com',
    volumeBindingMode: 'Immediate',
  });
  await a.post('/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses', {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshotClass',
    metadata: {
      name: 'csi-azuredisk-vsc',
      annotations: { 'snapshot.storage.kubernetes.io/is-default-class': 'true' },
    },
    driver: 'disk.csi.azure.com',
    deletionPolicy,
  });
}
