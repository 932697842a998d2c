import type { ClusterStateRestoreResult } from '../sources/kubernetes/cluster-state.ts';
import { list, str, usageError, type Command } from './command.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';
import { openRepository } from './repo.ts';
import { formatChange } from '../sources/kubernetes/diff.ts';

export const clusterStateRestoreCommand: Command<ClusterStateRestoreResult> = {
  path: ['cluster-state', 'restore'],
  summary: 'put Kubernetes objects from a cluster-state snapshot back (dependency order, per-object results)',
  usage: '[SNAPSHOT | latest]',
  options: {
    ...KUBE_OPTIONS,
    timestamp: {
      type: 'string',
      arg: 'YYYYMMDD_HHMMSS',
      description: 'restore the snapshot taken at this time',
    },
    namespace: {
      type: 'string',
      multiple: true,
      short: 'n',
      arg: 'NS',
      description: 'restore only these source namespaces',
    },
    'namespace-map': {
      type: 'string',
      multiple: true,
      arg: 'OLD=NEW',
      description: 'restore namespace OLD into NEW (repeatable)',
    },
    'include-resources': {
      type: 'string',
      multiple: true,
      arg: 'RESOURCES',
      description: 'only these resources, group-qualified (e.g. configmaps,ingresses.networking.k8s.io)',
    },
    'exclude-resources': {
      type: 'string',
      multiple: true,
      arg: 'RESOURCES',
      description: 'leave these resources out',
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
    'existing-resource-policy': {
      type: 'string',
      arg: 'none|update',
      default: 'none',
      description:
        "an object that already exists: leave it (none) or server-side apply the snapshot's (update)",
    },
    existing: {
      type: 'string',
      arg: 'skip|update',
      description: 'older name of --existing-resource-policy (skip = none)',
    },
    priorities: {
      type: 'string',
      multiple: true,
      arg: 'RESOURCES',
      description:
        'restore order, group-qualified resources (replaces the default; unnamed ones follow; CRDs and Namespaces always first)',
    },
    'preserve-node-ports': {
      type: 'boolean',
      description: "keep Services' nodePorts from the snapshot (default: the cluster assigns new ones)",
    },
    'preserve-cluster-ips': {
      type: 'boolean',
      description: "keep Services' clusterIPs (only back into the same cluster, where they may be free)",
    },
    'dry-run': { type: 'boolean', description: 'print what would happen per object, change nothing' },
    diff: {
      type: 'boolean',
      description: 'like --dry-run, plus the field-level changes for existing objects',
    },
  },
  help: `Objects are applied in dependency order (CRDs, Namespaces, storage, RBAC, Secrets, ConfigMaps, cert-manager,
workloads, Services, Ingresses, then other custom resources, each after its CRD is Established); the order is
configurable as cluster-state.restore.priorities in lifeboat.yaml. Per-kind restore actions (docs/kubernetes.md)
drop what the old cluster assigned (Services' clusterIPs and nodePorts, PVCs' volumes), never recreate a PV
that was bound, remap ownerReferences to the restored owners; ACME Orders/Challenges are never restored.
Exit code 1 if any object failed.
Examples:
  lifeboat cluster-state restore --timestamp 20241201_120000 --diff
  lifeboat cluster-state restore latest --namespace-map rocketchat=rocketchat-restore
  lifeboat cluster-state restore latest --existing-resource-policy update --include-resources configmaps`,
  async run(ctx, values, args) {
    const { restoreClusterState } = await import('../sources/kubernetes/cluster-state.ts');
    const { parseNamespaceMap } = await import('../sources/kubernetes/objects.ts');
    if (args.length > 1) throw usageError('give one SNAPSHOT');
    const ts = str(values.timestamp);
    if (ts && args.length) throw usageError('give either SNAPSHOT or --timestamp, not both');
    const old = str(values.existing);
    if (old !== undefined && old !== 'skip' && old !== 'update')
      throw usageError(`--existing must be skip or update, got "${old}"`);
    const policy =
      old === undefined
        ? (str(values['existing-resource-policy']) ?? 'none')
        : old === 'skip'
          ? 'none'
          : 'update';
    if (policy !== 'none' && policy !== 'update')
      throw usageError(`--existing-resource-policy must be none or update, got "${policy}"`);
    if (values['dry-run'] && values.diff)
      throw usageError('give --dry-run or --diff, not both', '--diff already changes nothing');
    const namespaceMap = parseNamespaceMap(list(values['namespace-map']));
    const repo = await openRepository(ctx, { lock: 'shared' });
    const snapshot = await repo.resolveSnapshot(ts ?? args[0], { type: 'cluster-state' });
    const client = await kubeClient(ctx, values);
    return restoreClusterState({
      client,
      repo,
      snapshot,
      namespaces: list(values.namespace),
      filter: {
        include: [...list(values['include-resources']), ...list(values.include)],
        exclude: [...list(values['exclude-resources']), ...list(values.exclude)],
      },
      namespaceMap,
      existing: policy,
      priorities: list(values.priorities).length ? list(values.priorities) : undefined,
      choices: {
        preserveNodePorts: values['preserve-node-ports'] === true,
        preserveClusterIPs: values['preserve-cluster-ips'] === true,
      },
      mode: values.diff ? 'diff' : values['dry-run'] ? 'dry-run' : 'apply',
      signal: ctx.signal,
    });
  },
  human(r, out) {
    for (const o of r.objects) {
      out.line(`${o.result.padEnd(12)} ${o.key}${o.reason ? `  (${o.reason})` : ''}`);
      for (const c of o.changes ?? []) out.line(`    ${formatChange(c)}`);
    }
    out.line(
      Object.entries(r.totals)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ') || 'nothing to restore',
    );
  },
  exitCode: (r) => (r.objects.some((o) => o.result === 'failed') ? 1 : 0),
  effect: 'change',
  layer: 'cluster-state',
  event: (r) => {
    const failed = r.objects.filter((o) => o.result === 'failed').length;
    return {
      snapshot: r.snapshot,
      items: r.objects.length,
      ...(failed && failed < r.objects.length ? { result: 'partial' as const } : {}),
      details: { mode: r.mode, failed, ...r.totals },
    };
  },
};
