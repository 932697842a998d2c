/**
 * The parts of Kubernetes controllers the tests play by hand, because the test cluster (test/env/kube.ts)
 * runs only etcd and kube-apiserver. Each helper says which controller it stands in for.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- API objects are untyped JSON here */
import { rawRequest, type KubeTestCluster } from './kube.ts';

async function ok(p: Promise<{ status: number; body: unknown }>, what: string): Promise<any> {
  const r = await p;
  if (r.status >= 300) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body).slice(0, 400)}`);
  return r.body;
}

export function admin(kube: KubeTestCluster) {
  return {
    get: (path: string) => rawRequest(kube, kube.tokens.admin, 'GET', path),
    post: (path: string, body: unknown) =>
      ok(rawRequest(kube, kube.tokens.admin, 'POST', path, body), `POST ${path}`),
    put: (path: string, body: unknown) =>
      ok(rawRequest(kube, kube.tokens.admin, 'PUT', path, body), `PUT ${path}`),
    patch: (path: string, body: unknown) =>
      ok(
        rawRequest(kube, kube.tokens.admin, 'PATCH', path, body, 'application/merge-patch+json'),
        `PATCH ${path}`,
      ),
    del: (path: string) => rawRequest(kube, kube.tokens.admin, 'DELETE', path),
  };
}

/** Namespaced collections the namespace controller would empty (the ones our fixtures use). */
const COLLECTIONS = [
  '/api/v1/namespaces/NS/secrets',
  '/api/v1/namespaces/NS/configmaps',
  '/api/v1/namespaces/NS/services',
  '/api/v1/namespaces/NS/serviceaccounts',
  '/api/v1/namespaces/NS/persistentvolumeclaims',
  '/apis/apps/v1/namespaces/NS/deployments',
  '/apis/apps/v1/namespaces/NS/statefulsets',
  '/apis/networking.k8s.io/v1/namespaces/NS/ingresses',
  '/apis/rbac.authorization.k8s.io/v1/namespaces/NS/roles',
  '/apis/rbac.authorization.k8s.io/v1/namespaces/NS/rolebindings',
  '/apis/cert-manager.io/v1/namespaces/NS/certificates',
  '/apis/cert-manager.io/v1/namespaces/NS/issuers',
  '/apis/snapshot.storage.k8s.io/v1/namespaces/NS/volumesnapshots',
];

/**
 * Plays the namespace controller (and the pvc-protection controller): deletes a namespace, empties it,
 * drops the PVC protection finalizers, and finalizes the namespace so it really disappears.
 */
export async function deleteNamespace(kube: KubeTestCluster, ns: string): Promise<void> {
  const a = admin(kube);
  await a.del(`/api/v1/namespaces/${ns}`);
  for (const c of COLLECTIONS) {
    const path = c.replace('NS', ns);
    const list = await a.get(path);
    for (const item of list.body?.items ?? []) {
      if (item.metadata.finalizers?.length)
        await a.patch(`${path}/${item.metadata.name}`, { metadata: { finalizers: null } });
      await a.del(`${path}/${item.metadata.name}`);
    }
  }
  const nsObj = (await a.get(`/api/v1/namespaces/${ns}`)).body;
  if (nsObj?.kind === 'Namespace') {
    nsObj.spec = { finalizers: [] };
    await a.put(`/api/v1/namespaces/${ns}/finalize`, nsObj);
  }
  for (let i = 0; i < 100; i++) {
    if ((await a.get(`/api/v1/namespaces/${ns}`)).status === 404) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`namespace ${ns} still exists`);
}

/** Plays the CSI snapshot controller: marks a VolumeSnapshot ready (or failed) through its status subresource. */
export async function setSnapshotStatus(
  kube: KubeTestCluster,
  ns: string,
  name: string,
  status: { readyToUse?: boolean; restoreSize?: string; error?: { message: string } },
): Promise<void> {
  const a = admin(kube);
  const path = `/apis/snapshot.storage.k8s.io/v1/namespaces/${ns}/volumesnapshots/${name}`;
  const vs = (await a.get(path)).body;
  vs.status = {
    boundVolumeSnapshotContentName: `snapcontent-${vs.metadata.uid}`,
    creationTime: new Date().toISOString(),
    ...status,
    ...(status.error ? { error: { time: new Date().toISOString(), ...status.error } } : {}),
  };
  await a.put(`${path}/status`, vs);
}

/**
 * Plays the PV controller's binder for a statically provisioned CSI volume: creates a PV for the claim and
 * marks both Bound.
 */
export async function bindPvc(
  kube: KubeTestCluster,
  ns: string,
  pvc: string,
  driver = 'disk.csi.azure.com',
): Promise<string> {
  const a = admin(kube);
  const claim = (await a.get(`/api/v1/namespaces/${ns}/persistentvolumeclaims/${pvc}`)).body;
  const pvName = `pv-${claim.metadata.uid}`;
  const size = claim.spec.resources.requests.storage;
  await a.post('/api/v1/persistentvolumes', {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name: pvName },
    spec: {
      capacity: { storage: size },
      accessModes: claim.spec.accessModes,
      persistentVolumeReclaimPolicy: 'Delete',
      storageClassName: claim.spec.storageClassName,
      csi: { driver, volumeHandle: `/subscriptions/x/disks/${pvName}` },
      claimRef: { kind: 'PersistentVolumeClaim', namespace: ns, name: pvc, uid: claim.metadata.uid },
    },
  });
  const pv = (await a.get(`/api/v1/persistentvolumes/${pvName}`)).body;
  pv.status = { phase: 'Bound' };
  await a.put(`/api/v1/persistentvolumes/${pvName}/status`, pv);
  await a.patch(`/api/v1/namespaces/${ns}/persistentvolumeclaims/${pvc}`, { spec: { volumeName: pvName } });
  const c2 = (await a.get(`/api/v1/namespaces/${ns}/persistentvolumeclaims/${pvc}`)).body;
  c2.status = { phase: 'Bound', capacity: { storage: size }, accessModes: claim.spec.accessModes };
  await a.put(`/api/v1/namespaces/${ns}/persistentvolumeclaims/${pvc}/status`, c2);
  return pvName;
}

export interface ControllerLoop {
  stop(): Promise<void>;
}

/**
 * Runs `step` every 100 ms until stopped: the tests' stand-in for a controller's reconcile loop
 * (snapshot controller, pvc-protection controller, PV binder). Errors are kept and rethrown by stop().
 */
export function controllerLoop(step: () => Promise<void>): ControllerLoop {
  let running = true;
  let error: unknown;
  const done = (async () => {
    while (running) {
      try {
        await step();
      } catch (e) {
        error ??= e;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      if (error) throw error;
    },
  };
}

/**
 * Plays the pvc-protection controller: a PVC being deleted loses its `kubernetes.io/pvc-protection`
 * finalizer (no pods run here, so nothing uses it).
 */
export async function releaseDeletedPvcs(kube: KubeTestCluster, ns: string): Promise<void> {
  const a = admin(kube);
  const list = (await a.get(`/api/v1/namespaces/${ns}/persistentvolumeclaims`)).body;
  for (const pvc of list.items ?? []) {
    if (pvc.metadata.deletionTimestamp && pvc.metadata.finalizers?.length) {
      await a.patch(`/api/v1/namespaces/${ns}/persistentvolumeclaims/${pvc.metadata.name}`, {
        metadata: { finalizers: null },
      });
    }
  }
}

/**
 * Plays the Deployment and StatefulSet controllers and the kubelet, minimally (added for the recovery
 * tests, test/operations/recover.test.ts): keeps one Pod per wanted replica (generateName `<workload>-`,
 * the template's labels; unscheduled, so no container runs and a deletion is immediate) and reports the
 * workload's status as every one of them updated and ready for the current generation. With `holdPods`
 * the pods of a workload scaled down are not deleted (pods stuck terminating).
 */
export async function playWorkloads(
  kube: KubeTestCluster,
  ns: string,
  opts: {
    holdPods?: boolean;
    /** Called after each pod deletion with the time taken just before it was asked for: a lower bound of the moment the pod went. */
    onPodDeleted?: (workload: string, requestedAt: string) => void;
  } = {},
): Promise<void> {
  const a = admin(kube);
  for (const kind of ['deployments', 'statefulsets']) {
    const base = `/apis/apps/v1/namespaces/${ns}/${kind}`;
    for (const w of (await a.get(base)).body?.items ?? []) {
      const want = w.spec.replicas ?? 1;
      const selector = Object.entries(w.spec.selector?.matchLabels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      const podsPath = `/api/v1/namespaces/${ns}/pods`;
      const pods =
        (await a.get(`${podsPath}?labelSelector=${encodeURIComponent(selector)}`)).body?.items ?? [];
      let count = pods.length;
      for (; count < want; count++)
        await a.post(podsPath, {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { generateName: `${w.metadata.name}-`, labels: w.spec.template.metadata.labels },
          spec: { containers: [{ name: 'app', image: w.spec.template.spec.containers[0].image }] },
        });
      if (!opts.holdPods)
        for (const p of pods.slice(want)) {
          const requestedAt = new Date().toISOString();
          await a.del(`${podsPath}/${p.metadata.name}`);
          opts.onPodDeleted?.(w.metadata.name, requestedAt);
          count--;
        }
      const ready = Math.min(count, want);
      const status = {
        observedGeneration: w.metadata.generation,
        replicas: count,
        readyReplicas: ready,
        updatedReplicas: ready,
        availableReplicas: ready,
        ...(kind === 'statefulsets' ? { currentReplicas: ready } : {}),
      };
      const s = w.status ?? {};
      if (Object.entries(status).some(([k, v]) => s[k] !== v)) {
        w.status = status;
        await rawRequest(kube, kube.tokens.admin, 'PUT', `${base}/${w.metadata.name}/status`, w);
      }
    }
  }
}
