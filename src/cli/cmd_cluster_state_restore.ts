import { restoreClusterState, type ClusterStateRestoreResult } from '../sources/kubernetes/cluster-state.ts';
import { formatChange } from '../sources/kubernetes/diff.ts';
import { parseNamespaceMap } from '../sources/kubernetes/objects.ts';
import { list, str, usageError, type Command } from './command.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';
import { openRepository } from './repo.ts';

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
    include: { type: 'string', multiple: true, arg: 'KINDS', description: 'only these kinds' },
    exclude: { type: 'string', multiple: true, arg: 'KINDS', description: 'leave these kinds out' },
    existing: {
      type: 'string',
      arg: 'skip|update',
      default: 'skip',
      description: 'what to do with objects that already exist',
    },
    'dry-run': { type: 'boolean', description: 'print what would happen per object, change nothing' },
    diff: {
      type: 'boolean',
      description: 'like --dry-run, plus the field-level changes for existing objects',
    },
  },
  help: `Objects are applied in dependency order (CRDs, Namespaces, storage, RBAC, Secrets, ConfigMaps, cert-manager,
workloads, Services, Ingresses); ACME Orders/Challenges are never restored. Exit code 1 if any object failed.
Examples:
  lifeboat cluster-state restore --timestamp 20241201_120000 --diff
  lifeboat cluster-state restore latest --namespace-map rocketchat=rocketchat-restore`,
  async run(ctx, values, args) {
    if (args.length > 1) throw usageError('give one SNAPSHOT');
    const ts = str(values.timestamp);
    if (ts && args.length) throw usageError('give either SNAPSHOT or --timestamp, not both');
    const existing = str(values.existing) ?? 'skip';
    if (existing !== 'skip' && existing !== 'update')
      throw usageError(`--existing must be skip or update, got "${existing}"`);
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
      kinds: { include: list(values.include), exclude: list(values.exclude) },
      namespaceMap,
      existing,
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
