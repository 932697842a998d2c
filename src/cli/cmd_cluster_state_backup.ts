import { startBackup } from '../core/repository/backup.ts';
import type { SkipRecord } from '../sources/kubernetes/cluster-state.ts';
import type { HelmReleaseSummary } from '../sources/kubernetes/helm.ts';
import { list, str, type Command } from './command.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';
import { openRepository } from './repo.ts';

export interface ClusterStateBackupCliResult {
  id: string;
  timestamp: string;
  namespaces: string[];
  counts: Record<string, number>;
  objects: number;
  helmReleases: HelmReleaseSummary[];
  /** What was left out and why: whole resources, or objects of them (counted). */
  skipped: SkipRecord[];
  bytesAdded: number;
}

export const clusterStateBackupCommand: Command<ClusterStateBackupCliResult> = {
  path: ['cluster-state', 'backup'],
  summary:
    'back up every Kubernetes object the namespaces hold (API discovery), Helm releases decoded, with what was skipped and why',
  options: {
    ...KUBE_OPTIONS,
    name: { type: 'string', arg: 'NAME', description: 'name the backup (stored as a tag)' },
    namespace: {
      type: 'string',
      multiple: true,
      short: 'n',
      arg: 'NS',
      description: 'namespace to back up (repeatable; default all but kube-*)',
    },
    'include-resources': {
      type: 'string',
      multiple: true,
      arg: 'RESOURCES',
      description:
        'only these resources, group-qualified (e.g. configmaps,ingresses.networking.k8s.io; kinds work too)',
    },
    'exclude-resources': {
      type: 'string',
      multiple: true,
      arg: 'RESOURCES',
      description: 'leave these resources out (e.g. secrets,servicemonitors.monitoring.coreos.com)',
    },
    include: {
      type: 'string',
      multiple: true,
      arg: 'KINDS',
      description: 'older name of --include-resources',
    },
    exclude: {
      type: 'string',
      multiple: true,
      arg: 'KINDS',
      description: 'older name of --exclude-resources',
    },
    'include-cluster-resources': {
      type: 'boolean',
      description:
        'also the cluster-scoped objects the namespaces use: ClusterRoles/Bindings binding their subjects, StorageClasses, IngressClasses, VolumeSnapshotClasses, ClusterIssuers',
    },
    tag: { type: 'string', multiple: true, arg: 'TAG', description: 'tag the snapshot (repeatable)' },
  },
  help: `Every namespaced resource the API server serves (custom resources included) that supports list and get is
backed up, less the default exclusions (Events, EndpointSlices, Leases, ControllerRevisions, VolumeSnapshots,
cert-manager's in-flight requests, controller-owned Pods/ReplicaSets/Jobs; docs/kubernetes.md), plus the CRDs
of the custom resources taken. Server-managed fields (uid, resourceVersion, status, …) are stripped; Secrets
are stored encrypted and never printed. What was skipped, and why, is recorded in the snapshot and in --json (skipped).
Examples:
  lifeboat cluster-state backup --namespace rocketchat --name before-upgrade
  lifeboat cluster-state backup --context prod --exclude-resources secrets
  lifeboat cluster-state backup -n rocketchat --include-cluster-resources`,
  async run(ctx, values) {
    const { backupClusterState } = await import('../sources/kubernetes/cluster-state.ts');
    const client = await kubeClient(ctx, values);
    const repo = await openRepository(ctx);
    const session = await startBackup(repo, 'cluster-state backup');
    try {
      const r = await backupClusterState({
        client,
        session,
        namespaces: list(values.namespace),
        filter: {
          include: [...list(values['include-resources']), ...list(values.include)],
          exclude: [...list(values['exclude-resources']), ...list(values.exclude)],
          includeClusterResources: values['include-cluster-resources'] === true,
        },
        name: str(values.name),
        tags: list(values.tag),
      });
      return {
        id: r.snapshot.id,
        timestamp: r.snapshot.timestamp,
        namespaces: r.namespaces,
        counts: r.counts,
        objects: Object.values(r.counts).reduce((a, b) => a + b, 0),
        helmReleases: r.helmReleases,
        skipped: r.skipped,
        bytesAdded: r.snapshot.summary.bytesAdded,
      };
    } catch (e) {
      await session.abort().catch(() => {});
      throw e;
    }
  },
  human(r, out) {
    out.line(
      `snapshot ${r.id.slice(0, 8)} (${r.timestamp}) saved: ${r.objects} objects from ${r.namespaces.join(', ')}`,
    );
    for (const [k, n] of Object.entries(r.counts).sort()) out.line(`  ${k}: ${n}`);
    const objectSkips = r.skipped.filter((s) => s.count);
    if (objectSkips.length)
      out.line(
        `  left out: ${objectSkips.map((s) => `${s.count} ${s.resource}${s.namespace ? ` in ${s.namespace}` : ''} (${s.reason})`).join('; ')}`,
      );
    for (const h of r.helmReleases)
      out.line(
        `  helm ${h.namespace}/${h.name}: ${h.chart}-${h.chartVersion} revision ${h.revision} (${h.status})`,
      );
  },
  effect: 'change',
  layer: 'cluster-state',
  event: (r) => ({
    snapshot: r.id,
    bytesAdded: r.bytesAdded,
    items: r.objects,
    details: { namespaces: r.namespaces.length, objects: r.objects, helmReleases: r.helmReleases.length },
  }),
};
