/**
 * The phases of a recovery (recover.ts plans them): each calls a layer's own restore function
 * (secrets sync, cluster-state restore, PVC restore, MongoDB restore) or works the application's
 * workloads the way kubectl does (`kubectl scale`, `kubectl rollout restart`, `kubectl rollout status`).
 *
 * Replica counts before a data-only scale-down are kept twice: on the workload itself (annotation
 * `lifeboat.io/recovery-replicas: <recovery id>=<count>`, written before scaling, so a recovery killed in
 * the middle of scaling still knows), and in the scale-down phase's record (summary), which is what a
 * resumed recovery reads.
 */
import type { MongoClient } from 'mongodb';
import { LifeboatError } from '../core/errors.ts';
import type { Repository } from '../core/repository/repository.ts';
import type { KubeClient, ResourceInfo } from '../sources/kubernetes/client.ts';
import { restoreClusterState } from '../sources/kubernetes/cluster-state.ts';
import type { KubeObject } from '../sources/kubernetes/objects.ts';
import { kubeResources, restorePvcs, type SnapshotVolume } from '../sources/kubernetes/pvc.ts';
import { applyRestore, inspectTargets, planRestore } from '../sources/mongodb/restore.ts';
import { NamespaceFilter, NamespaceRenamer } from '../sources/mongodb/nsfilter.ts';
import { syncSecrets } from '../sources/secrets/secrets.ts';
import type { SecretsVault } from '../sources/secrets/vault.ts';
import { restoreTerraform } from '../sources/terraform/terraform.ts';
import type { StepRecord } from './operation-record.ts';
import type { StepResult } from './runner.ts';
import { rolloutState } from './health.ts';
import { runSmokeTest, smokeSummary, type SmokeTest } from './smoke.ts';
import {
  kubectlRef,
  workloadKey,
  type PhaseName,
  type PlannedPhase,
  type RecoveryPlan,
  type WorkloadRef,
} from './recover.ts';

export const REPLICAS_ANNOTATION = 'lifeboat.io/recovery-replicas';
/** What `kubectl rollout restart` sets on the pod template. */
export const RESTARTED_AT_ANNOTATION = 'kubectl.kubernetes.io/restartedAt';

export interface PhaseContext {
  /** The recovery's id (replica annotations carry it). */
  id: string;
  plan: RecoveryPlan;
  /** For reading snapshots (bound to the run's signal). */
  repo: Repository;
  kube: () => Promise<KubeClient>;
  mongo: () => Promise<MongoClient>;
  vault?: SecretsVault;
  /** The fast `lifeboat validate`, run by the CLI (it is a command). */
  validate?: (signal: AbortSignal) => Promise<StepResult>;
  smoke?: Omit<SmokeTest, 'url'>;
  /** `--include-terraform`: the directory the state files go to (default: back to their azurerm blobs). */
  terraform?: { target?: string; env?: NodeJS.ProcessEnv };
  /** The restore order of cluster objects (`cluster-state.restore.priorities`; default DEFAULT_PRIORITIES). */
  clusterStatePriorities?: readonly string[];
  /** How long to wait for pods to go, workloads to be ready, PVCs to bind. */
  waitMs: number;
  pollMs: number;
  /** The phases' records as they are now (scale-up reads what scale-down recorded). */
  steps: () => StepRecord[];
  note: (message: string) => void;
}

type Summary = Record<string, string | number | boolean>;

async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  await new Promise((r) => setTimeout(r, ms));
  signal?.throwIfAborted();
}

async function snapshotOf(c: PhaseContext, phase: PlannedPhase) {
  if (!phase.snapshot) throw new LifeboatError('INTERNAL', `phase ${phase.name} has no snapshot`);
  return c.repo.resolveSnapshot(phase.snapshot.id);
}

async function withMongo<T>(c: PhaseContext, fn: (client: MongoClient) => Promise<T>): Promise<T> {
  const client = await c.mongo();
  try {
    return await fn(client);
  } finally {
    await client.close().catch(() => {});
  }
}

// ---- workloads -------------------------------------------------------------------------------------

async function workloadResource(client: KubeClient, w: WorkloadRef): Promise<ResourceInfo> {
  return client.mustResource('apps/v1', w.kind);
}

async function getWorkload(
  client: KubeClient,
  w: WorkloadRef,
): Promise<{ res: ResourceInfo; obj: KubeObject }> {
  const res = await workloadResource(client, w);
  const obj = await client.get(res, w.namespace, w.name);
  if (!obj)
    throw new LifeboatError('NOT_FOUND', `${w.kind} ${w.namespace}/${w.name} does not exist`, {
      hint: 'check --app / recover.apps and the namespace (`kubectl get deploy,sts -n NS`)',
    });
  return { res, obj };
}

interface WorkloadSpec {
  replicas?: number;
  selector?: { matchLabels?: Record<string, string> };
}

async function setReplicas(client: KubeClient, res: ResourceInfo, w: WorkloadRef, replicas: number) {
  await client.mergePatch(res, w.namespace, w.name, { spec: { replicas } }, 'scale');
}

/** The recorded count on the workload, when this recovery wrote it. */
function annotatedReplicas(obj: KubeObject, id: string): number | undefined {
  const v = (obj.metadata.annotations as Record<string, string> | undefined)?.[REPLICAS_ANNOTATION];
  const m = v ? /^(.+)=(\d+)$/.exec(v) : null;
  return m && m[1] === id ? Number(m[2]) : undefined;
}

async function waitPodsGone(
  c: PhaseContext,
  client: KubeClient,
  w: WorkloadRef,
  obj: KubeObject,
  signal: AbortSignal,
) {
  const labels = (obj.spec as WorkloadSpec).selector?.matchLabels ?? {};
  const selector = Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  if (!selector) return;
  const pods = await client.mustResource('v1', 'Pod');
  const deadline = Date.now() + c.waitMs;
  for (;;) {
    const left = await client.list(pods, w.namespace, selector);
    if (left.length === 0) return;
    if (Date.now() > deadline)
      throw new LifeboatError(
        'TIMEOUT',
        `${left.length} pod(s) of ${kubectlRef(w)} still exist ${Math.round(c.waitMs / 1000)} s after scaling to 0`,
        {
          hint: `check them with \`kubectl get pods -n ${w.namespace} -l ${selector}\` (stuck terminating?)`,
        },
      );
    await sleep(c.pollMs, signal);
  }
}

/** `kubectl rollout status`: the controller saw the latest spec and every wanted replica is updated and ready. */
async function waitReady(c: PhaseContext, client: KubeClient, w: WorkloadRef, signal: AbortSignal) {
  const res = await workloadResource(client, w);
  const deadline = Date.now() + c.waitMs;
  for (;;) {
    const obj = await client.get(res, w.namespace, w.name);
    const state = obj ? rolloutState(obj) : { ready: false, detail: 'it does not exist' };
    if (state.ready) return;
    if (Date.now() > deadline)
      throw new LifeboatError(
        'TIMEOUT',
        `${kubectlRef(w)} not ready ${Math.round(c.waitMs / 1000)} s after the change: ${state.detail}`,
        { hint: `look at \`kubectl rollout status ${kubectlRef(w)}\` and the pods' events` },
      );
    await sleep(c.pollMs, signal);
  }
}

async function scaleDown(c: PhaseContext, signal: AbortSignal): Promise<StepResult> {
  const client = await c.kube();
  const summary: Summary = {};
  for (const w of c.plan.apps) {
    const { res, obj } = await getWorkload(client, w);
    // A resumed scale-down finds the app at 0 already: the count it had is on the annotation.
    const replicas = annotatedReplicas(obj, c.id) ?? (obj.spec as WorkloadSpec).replicas ?? 1;
    await client.mergePatch(res, w.namespace, w.name, {
      metadata: { annotations: { [REPLICAS_ANNOTATION]: `${c.id}=${replicas}` } },
    });
    summary[workloadKey(w)] = replicas;
    await setReplicas(client, res, w, 0);
    c.note(`scaled ${kubectlRef(w)} from ${replicas} to 0`);
  }
  for (const w of c.plan.apps) {
    const { obj } = await getWorkload(client, w);
    await waitPodsGone(c, client, w, obj, signal);
  }
  return { summary };
}

/** The count to scale back to: what scale-down recorded, else what it wrote on the workload. */
export async function recordedReplicas(c: PhaseContext, client: KubeClient, w: WorkloadRef): Promise<number> {
  const recorded = c.steps().find((s) => s.name === 'scale-down')?.summary?.[workloadKey(w)];
  if (typeof recorded === 'number') return recorded;
  const { obj } = await getWorkload(client, w);
  const annotated = annotatedReplicas(obj, c.id);
  if (annotated === undefined)
    throw new LifeboatError(
      'NOT_FOUND',
      `no replica count recorded for ${kubectlRef(w)} by recovery ${c.id}`,
      {
        hint: `scale it by hand: kubectl scale ${kubectlRef(w)} --replicas=N`,
      },
    );
  return annotated;
}

/**
 * Back to the recorded counts. `wait: false` (the finally path of a stopped recovery) only sets them;
 * `finishScaleUp` then waits and removes the bookkeeping.
 */
export async function scaleUp(
  c: PhaseContext,
  signal: AbortSignal,
  opts: { wait?: boolean } = {},
): Promise<StepResult> {
  const client = await c.kube();
  const summary: Summary = {};
  for (const w of c.plan.apps) {
    const replicas = await recordedReplicas(c, client, w);
    const res = await workloadResource(client, w);
    await setReplicas(client, res, w, replicas);
    summary[workloadKey(w)] = replicas;
    c.note(`scaled ${kubectlRef(w)} back to ${replicas}`);
  }
  if (opts.wait !== false) await finishScaleUp(c, signal);
  return { summary };
}

export async function finishScaleUp(c: PhaseContext, signal: AbortSignal): Promise<void> {
  const client = await c.kube();
  for (const w of c.plan.apps) {
    await waitReady(c, client, w, signal);
    const res = await workloadResource(client, w);
    await client.mergePatch(res, w.namespace, w.name, {
      metadata: { annotations: { [REPLICAS_ANNOTATION]: null } },
    });
  }
}

async function restart(c: PhaseContext, signal: AbortSignal): Promise<StepResult> {
  const client = await c.kube();
  const at = new Date().toISOString();
  for (const w of c.plan.apps) {
    const { res } = await getWorkload(client, w);
    await client.mergePatch(res, w.namespace, w.name, {
      spec: { template: { metadata: { annotations: { [RESTARTED_AT_ANNOTATION]: at } } } },
    });
  }
  for (const w of c.plan.apps) await waitReady(c, client, w, signal);
  return { summary: { restarted: c.plan.apps.length, restartedAt: at } };
}

// ---- preflight -------------------------------------------------------------------------------------

const NEEDS_KUBE: PhaseName[] = ['secrets', 'cluster-state', 'pvc', 'scale-down', 'scale-up', 'restart'];

async function preflight(c: PhaseContext, signal: AbortSignal): Promise<StepResult> {
  const summary: Summary = {};
  const enabled = c.plan.phases.filter((p) => p.enabled);
  // Repository and keys: every chosen snapshot is read (decrypted, authenticated) again.
  for (const p of enabled.filter((x) => x.snapshot)) {
    const s = await snapshotOf(c, p);
    summary[`snapshot.${p.name}`] = `${s.id.slice(0, 8)} ${s.timestamp}`;
  }
  summary.repository = 'ok';
  signal.throwIfAborted();
  if (enabled.some((p) => NEEDS_KUBE.includes(p.name))) {
    const client = await c.kube();
    const version = await client.request<{ gitVersion?: string }>(
      'GET',
      '/version',
      'read the server version',
    );
    summary.kubernetes = `${client.server} ${version.gitVersion ?? ''}`.trim();
    if (enabled.some((p) => p.name === 'scale-down'))
      for (const w of c.plan.apps) await getWorkload(client, w);
    const pvc = enabled.find((p) => p.name === 'pvc');
    if (pvc) {
      const r = await kubeResources(client);
      const snapshot = await snapshotOf(c, pvc);
      let n = 0;
      for (const item of snapshot.items.filter((i) => i.kind === 'volume-snapshot')) {
        const { volume: v } = JSON.parse((await c.repo.readItemBuffer(item)).toString('utf8')) as {
          volume: SnapshotVolume;
        };
        const vs = await client.get(r.vs, v.namespace, v.volumeSnapshot);
        if (!(vs?.status as { readyToUse?: boolean } | undefined)?.readyToUse)
          throw new LifeboatError(
            'NOT_FOUND',
            `VolumeSnapshot ${v.namespace}/${v.volumeSnapshot} (PVC ${v.pvc}) is ${vs ? 'not readyToUse' : 'gone'}`,
            { hint: 'pick another --timestamp, or leave the PVCs out with --skip pvc' },
          );
        n++;
      }
      summary.volumeSnapshots = n;
    }
  }
  if (c.vault && enabled.some((p) => p.name === 'secrets')) {
    const listing = await c.vault.list();
    const manifests = [...listing.values()].filter((e) => e.tags['lifeboat-kind'] === 'manifest').length;
    if (!manifests)
      throw new LifeboatError('NOT_FOUND', `${c.vault.url} holds no Lifeboat secrets manifest`, {
        hint: 'check --vault, or leave the secrets out with --skip secrets',
      });
    summary.keyVault = `${c.vault.url} (${manifests} manifest part(s))`;
  }
  if (enabled.some((p) => p.name === 'mongodb'))
    await withMongo(c, async (client) => {
      await client.db('admin').command({ ping: 1 });
      summary.mongodb = 'reachable';
    });
  return { summary };
}

// ---- restore phases ----------------------------------------------------------------------------------

async function secrets(c: PhaseContext): Promise<StepResult> {
  const r = await syncSecrets({
    client: await c.kube(),
    vault: c.vault!,
    namespaces: c.plan.namespaces,
    secrets: [],
    mode: 'sync',
    createNamespaces: true,
  });
  const count = (a: string) => r.secrets.filter((s) => s.action === a).length;
  return {
    snapshot: r.vault,
    summary: {
      secrets: r.secrets.length,
      created: count('created'),
      updated: count('updated'),
      unchanged: count('unchanged'),
    },
  };
}

async function clusterState(c: PhaseContext, phase: PlannedPhase, signal: AbortSignal): Promise<StepResult> {
  const snapshot = await snapshotOf(c, phase);
  const r = await restoreClusterState({
    client: await c.kube(),
    repo: c.repo,
    snapshot,
    namespaces: c.plan.namespaces,
    filter: { include: [], exclude: [] },
    namespaceMap: new Map(),
    existing: 'none',
    mode: 'apply',
    priorities: c.clusterStatePriorities,
    signal,
  });
  const failed = r.objects.filter((o) => o.result === 'failed');
  if (failed.length)
    throw new LifeboatError(
      'CONFLICT',
      `${failed.length} object(s) could not be restored: ${failed
        .slice(0, 3)
        .map((o) => `${o.key} (${o.reason})`)
        .join('; ')}`,
      { hint: `see \`lifeboat cluster-state restore ${snapshot.id.slice(0, 8)} --diff\`` },
    );
  return { snapshot: snapshot.id, snapshotTime: snapshot.time, summary: { ...r.totals } as Summary };
}

async function pvc(c: PhaseContext, phase: PlannedPhase, signal: AbortSignal): Promise<StepResult> {
  const snapshot = await snapshotOf(c, phase);
  const r = await restorePvcs({
    client: await c.kube(),
    repo: c.repo,
    snapshot,
    pvcs: [],
    dryRun: false,
    timeoutMs: c.waitMs,
    pollMs: c.pollMs,
    signal,
  });
  return {
    snapshot: snapshot.id,
    snapshotTime: snapshot.time,
    summary: { pvcs: r.pvcs.filter((p) => p.result === 'restored').length },
  };
}

async function mongodb(c: PhaseContext, phase: PlannedPhase, signal: AbortSignal): Promise<StepResult> {
  const snapshot = await snapshotOf(c, phase);
  const plan = planRestore(snapshot, new NamespaceFilter([], []), new NamespaceRenamer([], []));
  return withMongo(c, async (client) => {
    await inspectTargets(client, plan);
    const r = await applyRestore({
      client,
      repo: c.repo,
      plan,
      drop: true,
      rollback: true,
      verify: true,
      signal,
      note: c.note,
    });
    return {
      snapshot: snapshot.id,
      snapshotTime: snapshot.time,
      summary: {
        collections: r.collections.length,
        documents: r.collections.reduce((n, x) => n + x.count, 0),
        verified: r.collections.filter((x) => x.verified).length,
        ...(r.preRestoreSnapshot ? { preRestoreSnapshot: r.preRestoreSnapshot } : {}),
      },
    };
  });
}

async function terraformState(c: PhaseContext, phase: PlannedPhase): Promise<StepResult> {
  const snapshot = await snapshotOf(c, phase);
  const target = c.terraform?.target;
  const r = await restoreTerraform(c.repo, snapshot, { target, toBlob: !target, env: c.terraform?.env });
  return { snapshot: snapshot.id, snapshotTime: snapshot.time, summary: { workspaces: r.workspaces.length } };
}

async function smoke(c: PhaseContext, signal: AbortSignal): Promise<StepResult> {
  const r = await runSmokeTest({ ...c.smoke, url: c.plan.smokeTestUrl! }, signal);
  return { summary: smokeSummary(r) };
}

export async function runPhase(
  c: PhaseContext,
  phase: PlannedPhase,
  signal: AbortSignal,
): Promise<StepResult> {
  switch (phase.name) {
    case 'preflight':
      return preflight(c, signal);
    case 'terraform-state':
      return terraformState(c, phase);
    case 'secrets':
      return secrets(c);
    case 'cluster-state':
      return clusterState(c, phase, signal);
    case 'pvc':
      return pvc(c, phase, signal);
    case 'scale-down':
      return scaleDown(c, signal);
    case 'mongodb':
      return mongodb(c, phase, signal);
    case 'scale-up':
      return scaleUp(c, signal);
    case 'restart':
      return restart(c, signal);
    case 'smoke-test':
      return smoke(c, signal);
    case 'validate':
      if (!c.validate) return { status: 'warning', summary: { validate: 'not available' } };
      return c.validate(signal);
  }
}
