/**
 * `lifeboat health`: is the application back? The guide's `scripts/lifecycle/validate-cluster-health.sh`,
 * run after a recovery or a deployment: every workload in the namespaces rolled out and ready (the rule
 * of `kubectl rollout status`), every claim bound, no pod stuck crash-looping or unable to pull, and —
 * when given — MongoDB answering a ping and the application's smoke test answering 2xx.
 *
 * Read-only. With a wait, the cluster checks are repeated until they pass or the time is up, because
 * right after a restore the controllers are still converging and a single look would fail for nothing.
 */
import type { MongoClient } from 'mongodb';
import { LifeboatError } from '../core/errors.ts';
import type { KubeClient } from '../sources/kubernetes/client.ts';
import type { KubeObject } from '../sources/kubernetes/objects.ts';
import { runSmokeTest, type SmokeTest } from './smoke.ts';

export type HealthStatus = 'ok' | 'warning' | 'failed';

export interface HealthCheck {
  /** workload | pvc | pod | namespace | mongodb | smoke-test */
  check: string;
  /** `deployment/rocketchat -n rocketchat`, a URL, … */
  subject: string;
  status: HealthStatus;
  detail: string;
}

export interface HealthReport {
  ok: boolean;
  checks: HealthCheck[];
  /** How many times the cluster was looked at (more than 1 only with a wait). */
  rounds: number;
  durationMs: number;
}

export interface HealthOptions {
  kube?: KubeClient;
  namespaces: string[];
  /** `uri` is shown (credentials removed); `connect` is called once, and its client closed after. */
  mongo?: { uri: string; connect(): Promise<MongoClient> };
  smoke?: SmokeTest;
  /** Keep looking until everything passes or this long has passed (0: look once). */
  waitMs?: number;
  pollMs?: number;
  signal?: AbortSignal;
  /** With a wait: told what still fails each time that changes, before looking again. */
  onWaiting?(failing: HealthCheck[], leftMs: number): void;
}

interface RolloutStatus {
  observedGeneration?: number;
  replicas?: number;
  readyReplicas?: number;
  updatedReplicas?: number;
  availableReplicas?: number;
  desiredNumberScheduled?: number;
  numberReady?: number;
  updatedNumberScheduled?: number;
}

/**
 * `kubectl rollout status` for one Deployment, StatefulSet or DaemonSet: the controller has seen the
 * latest spec, and every wanted replica is updated and ready. Shared with the recovery's wait.
 */
export function rolloutState(obj: KubeObject): { ready: boolean; detail: string } {
  const st = (obj.status ?? {}) as RolloutStatus;
  const generation = (obj.metadata as { generation?: number }).generation ?? 0;
  if ((st.observedGeneration ?? 0) < generation)
    return { ready: false, detail: 'the controller has not seen the latest spec yet' };
  if (obj.kind === 'DaemonSet') {
    const want = st.desiredNumberScheduled ?? 0;
    const ready = (st.numberReady ?? 0) >= want && (st.updatedNumberScheduled ?? 0) >= want;
    return { ready, detail: `${st.numberReady ?? 0}/${want} ready` };
  }
  const want = ((obj.spec ?? {}) as { replicas?: number }).replicas ?? 1;
  if (want === 0) {
    const left = st.replicas ?? 0;
    return { ready: left === 0, detail: left ? `scaled to 0, ${left} pod(s) left` : 'scaled to 0' };
  }
  const ready = (st.readyReplicas ?? 0) >= want && (st.updatedReplicas ?? 0) >= want;
  return {
    ready,
    detail: `${st.readyReplicas ?? 0}/${want} ready, ${st.updatedReplicas ?? 0} updated`,
  };
}

/** Waiting reasons after which a container will not start by itself: looking again will not help. */
const STUCK_REASONS = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
]);

interface PodStatus {
  phase?: string;
  containerStatuses?: { name: string; state?: { waiting?: { reason?: string; message?: string } } }[];
  initContainerStatuses?: PodStatus['containerStatuses'];
}

const WORKLOAD_KINDS = [
  ['apps/v1', 'Deployment'],
  ['apps/v1', 'StatefulSet'],
  ['apps/v1', 'DaemonSet'],
] as const;

async function clusterChecks(kube: KubeClient, namespaces: string[]): Promise<HealthCheck[]> {
  const checks: HealthCheck[] = [];
  const nsRes = await kube.mustResource('v1', 'Namespace');
  const pvcRes = await kube.mustResource('v1', 'PersistentVolumeClaim');
  const podRes = await kube.mustResource('v1', 'Pod');
  for (const ns of namespaces) {
    const namespace = await kube.get(nsRes, undefined, ns);
    if (!namespace) {
      checks.push({ check: 'namespace', subject: ns, status: 'failed', detail: 'does not exist' });
      continue;
    }
    let workloads = 0;
    for (const [apiVersion, kind] of WORKLOAD_KINDS) {
      const res = await kube.mustResource(apiVersion, kind);
      for (const obj of await kube.list(res, ns)) {
        workloads++;
        const r = rolloutState(obj);
        checks.push({
          check: 'workload',
          subject: `${kind.toLowerCase()}/${obj.metadata.name} -n ${ns}`,
          status: r.ready ? 'ok' : 'failed',
          detail: r.detail,
        });
      }
    }
    if (workloads === 0)
      checks.push({
        check: 'namespace',
        subject: ns,
        status: 'failed',
        detail: 'no Deployment, StatefulSet or DaemonSet: the application is not deployed here',
      });
    const pods = await kube.list(podRes, ns);
    const claimed = new Set(
      pods.flatMap((p) =>
        (
          ((p.spec as { volumes?: { persistentVolumeClaim?: { claimName?: string } }[] })?.volumes ?? []) as {
            persistentVolumeClaim?: { claimName?: string };
          }[]
        )
          .map((v) => v.persistentVolumeClaim?.claimName)
          .filter((n): n is string => Boolean(n)),
      ),
    );
    for (const pvc of await kube.list(pvcRes, ns)) {
      const phase = (pvc.status as { phase?: string } | undefined)?.phase ?? 'Pending';
      const name = pvc.metadata.name as string;
      const subject = `pvc/${name} -n ${ns}`;
      if (phase === 'Bound') checks.push({ check: 'pvc', subject, status: 'ok', detail: 'Bound' });
      else if (phase === 'Pending' && !claimed.has(name))
        // WaitForFirstConsumer classes bind a claim only once a pod uses it.
        checks.push({ check: 'pvc', subject, status: 'warning', detail: 'Pending, no pod uses it yet' });
      else checks.push({ check: 'pvc', subject, status: 'failed', detail: phase });
    }
    for (const pod of pods) {
      const st = (pod.status ?? {}) as PodStatus;
      const stuck = [...(st.initContainerStatuses ?? []), ...(st.containerStatuses ?? [])].find((c) =>
        STUCK_REASONS.has(c.state?.waiting?.reason ?? ''),
      );
      if (stuck)
        checks.push({
          check: 'pod',
          subject: `pod/${pod.metadata.name} -n ${ns}`,
          status: 'failed',
          detail: `container ${stuck.name}: ${stuck.state!.waiting!.reason}${stuck.state!.waiting!.message ? ` (${stuck.state!.waiting!.message})` : ''}`,
        });
      else if (st.phase === 'Failed')
        checks.push({
          check: 'pod',
          subject: `pod/${pod.metadata.name} -n ${ns}`,
          status: 'warning',
          detail: 'Failed (a finished Job pod, or evicted)',
        });
    }
  }
  return checks;
}

async function mongoCheck(mongo: NonNullable<HealthOptions['mongo']>): Promise<HealthCheck> {
  let client: MongoClient | undefined;
  try {
    client = await mongo.connect();
    const hello = await client.db('admin').command({ hello: 1 });
    const role = hello.isWritablePrimary ? 'primary' : hello.secondary ? 'secondary' : 'standalone';
    const build = await client.db('admin').command({ buildInfo: 1 });
    return {
      check: 'mongodb',
      subject: mongo.uri,
      status: hello.isWritablePrimary === false && !hello.secondary ? 'failed' : 'ok',
      detail: `answers, ${hello.setName ? `replica set ${hello.setName}, ` : ''}${role}, version ${build.version}`,
    };
  } catch (e) {
    return { check: 'mongodb', subject: mongo.uri, status: 'failed', detail: (e as Error).message };
  } finally {
    await client?.close().catch(() => {});
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });

export async function checkHealth(opts: HealthOptions): Promise<HealthReport> {
  const started = Date.now();
  const waitMs = opts.waitMs ?? 0;
  if (!opts.kube && !opts.mongo && !opts.smoke)
    throw new LifeboatError('USAGE', 'nothing to check', {
      hint: 'give --namespace (the cluster), --mongodb-uri, and/or --smoke-test-url',
    });
  let rounds = 0;
  let cluster: HealthCheck[] = [];
  if (opts.kube && opts.namespaces.length) {
    let told = '';
    for (;;) {
      rounds++;
      cluster = await clusterChecks(opts.kube, opts.namespaces);
      const failing = cluster.filter((c) => c.status === 'failed');
      const left = waitMs - (Date.now() - started);
      if (!failing.length || left <= 0) break;
      const now = JSON.stringify(failing);
      if (now !== told) opts.onWaiting?.(failing, left);
      told = now;
      await sleep(opts.pollMs ?? 2000, opts.signal);
    }
  }
  const checks = [...cluster];
  if (opts.mongo) checks.push(await mongoCheck(opts.mongo));
  if (opts.smoke) {
    try {
      const left = Math.max(0, waitMs - (Date.now() - started));
      const r = await runSmokeTest({ ...opts.smoke, waitMs: left }, opts.signal);
      checks.push({
        check: 'smoke-test',
        subject: r.url,
        status: 'ok',
        detail: `${r.status}${r.version ? `, version ${r.version}` : ''} after ${r.attempts} attempt(s)`,
      });
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      checks.push({
        check: 'smoke-test',
        subject: opts.smoke.url,
        status: 'failed',
        detail: (e as Error).message,
      });
    }
  }
  return {
    ok: !checks.some((c) => c.status === 'failed'),
    checks,
    rounds: Math.max(rounds, 1),
    durationMs: Date.now() - started,
  };
}
