import { startBackup } from '../core/repository/backup.ts';
import { backupClusterState } from '../sources/kubernetes/cluster-state.ts';
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
  bytesAdded: number;
}

export const clusterStateBackupCommand: Command<ClusterStateBackupCliResult> = {
  path: ['cluster-state', 'backup'],
  summary:
    'back up Kubernetes objects (Helm releases, Secrets, ConfigMaps, workloads, Ingresses, certificates)',
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
    include: {
      type: 'string',
      multiple: true,
      arg: 'KINDS',
      description: 'only these kinds (e.g. Secret,ConfigMap)',
    },
    exclude: { type: 'string', multiple: true, arg: 'KINDS', description: 'leave these kinds out' },
    tag: { type: 'string', multiple: true, arg: 'TAG', description: 'tag the snapshot (repeatable)' },
  },
  help: `Server-managed fields (uid, resourceVersion, status, …) are stripped; Secrets are stored encrypted and never printed.
Examples:
  lifeboat cluster-state backup --namespace rocketchat --name before-upgrade
  lifeboat cluster-state backup --context prod --exclude Secret`,
  async run(ctx, values) {
    const client = await kubeClient(ctx, values);
    const repo = await openRepository(ctx);
    const session = await startBackup(repo, 'cluster-state backup');
    try {
      const r = await backupClusterState({
        client,
        session,
        namespaces: list(values.namespace),
        kinds: { include: list(values.include), exclude: list(values.exclude) },
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
