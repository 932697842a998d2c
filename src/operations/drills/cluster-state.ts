/**
 * Cluster-state restore drill: the newest cluster-state snapshot's namespaced objects are restored with
 * the restore's own namespace mapping (desiredObjects + mapNamespace) into scratch namespaces
 * `lifeboat-drill-<id>-<n>` (labelled `lifeboat.io/drill=<id>`), each object read back and compared with
 * what was restored, then everything deleted again.
 *
 * A drill must not act on the world, so objects whose mere existence does are changed or left out, and
 * counted in the summary: workloads are created with 0 replicas (CronJobs suspended), Services as
 * ClusterIP; DaemonSets, Jobs, HorizontalPodAutoscalers (they would scale the workloads up), Ingresses
 * (they would claim the application's host names), cert-manager Certificates/Issuers (they would request
 * certificates) and PVCs (the pvc drill restores those, from their snapshots) are not created.
 * Cluster-scoped objects (CRDs, ClusterRoles, StorageClasses) are shared with the running cluster and
 * are not touched either.
 */
import { LifeboatError } from '../../core/errors.ts';
import type { Snapshot } from '../../core/repository/model.ts';
import { desiredObjects } from '../../sources/kubernetes/cluster-state.ts';
import type { KubeClient, ResourceInfo } from '../../sources/kubernetes/client.ts';
import { canonicalJson, type KubeObject } from '../../sources/kubernetes/objects.ts';
import { LABEL_DRILL } from './pvc.ts';
import type { LayerDrill, LayerDrillContext, LayerDrillResult } from './types.ts';

const LEFT_OUT = new Set([
  'DaemonSet',
  'Job',
  'HorizontalPodAutoscaler',
  'Ingress',
  'Certificate',
  'Issuer',
  'PersistentVolumeClaim',
]);

/** What is created instead of `o` (see the module comment), or undefined to leave it out. */
export function neutralise(o: KubeObject): KubeObject | undefined {
  if (LEFT_OUT.has(o.kind)) return undefined;
  const out = structuredClone(o);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- per-kind specs are untyped JSON
  const spec = out.spec as Record<string, any> | undefined;
  if (spec && (o.kind === 'Deployment' || o.kind === 'StatefulSet')) spec.replicas = 0;
  if (spec && o.kind === 'CronJob') spec.suspend = true;
  if (spec && o.kind === 'Service' && spec.type !== 'ClusterIP' && spec.type !== undefined) {
    if (spec.type === 'ExternalName') return out;
    spec.type = 'ClusterIP';
    delete spec.loadBalancerIP;
    delete spec.loadBalancerSourceRanges;
    delete spec.externalTrafficPolicy;
    delete spec.allocateLoadBalancerNodePorts;
    for (const p of spec.ports ?? []) delete p.nodePort;
  }
  return out;
}

/** Fields of `want` that `live` lacks or holds differently (server defaults in `live` are fine). */
export function differences(want: unknown, live: unknown, at = ''): string[] {
  if (want !== null && typeof want === 'object' && !Array.isArray(want)) {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return [at || '.'];
    return Object.entries(want as Record<string, unknown>).flatMap(([k, v]) =>
      differences(v, (live as Record<string, unknown>)[k], at ? `${at}.${k}` : k),
    );
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(live) || live.length !== want.length) return [at];
    return want.flatMap((v, i) => differences(v, live[i], `${at}[${i}]`));
  }
  return canonicalJson(want) === canonicalJson(live) ? [] : [at];
}

export function scratchNamespace(drillId: string, n: number): string {
  return `lifeboat-drill-${drillId}-${n}`;
}

export function clusterStateDrill(client: KubeClient): LayerDrill {
  return {
    layer: 'cluster-state',
    async cleanupLeftovers(ctx: LayerDrillContext) {
      const nsRes = await client.mustResource('v1', 'Namespace');
      const removed: string[] = [];
      for (const ns of await client.list(nsRes, undefined, LABEL_DRILL)) {
        const id = ns.metadata.labels?.[LABEL_DRILL];
        if (!id || id === ctx.drillId || ns.metadata.deletionTimestamp || !(await ctx.isAbandoned(id)))
          continue;
        await client.delete(nsRes, undefined, ns.metadata.name);
        removed.push(`namespace ${ns.metadata.name} (drill ${id})`);
      }
      return removed;
    },
    async run(ctx: LayerDrillContext, snapshot: Snapshot): Promise<LayerDrillResult> {
      const nsRes = await client.mustResource('v1', 'Namespace');
      const sourceNamespaces = [
        ...new Set(
          snapshot.items
            .filter((i) => i.kind === 'resource')
            .map((i) =>
              i.meta.kind === 'Namespace' ? (i.meta.name as string) : (i.meta.namespace as string | null),
            )
            .filter((n): n is string => typeof n === 'string'),
        ),
      ].sort();
      if (sourceNamespaces.length === 0)
        throw new LifeboatError('NOT_FOUND', `cluster-state ${snapshot.id.slice(0, 8)} holds no namespace`, {
          hint: 'back up a namespace with `lifeboat cluster-state backup --namespace NS`',
        });
      const map = new Map(sourceNamespaces.map((ns, i) => [ns, scratchNamespace(ctx.drillId, i)]));
      const scratch = new Set(map.values());
      const desired = (
        await desiredObjects({
          repo: ctx.repo,
          snapshot,
          namespaces: [],
          filter: { include: [], exclude: [] },
          namespaceMap: map,
        })
      ).filter((o) =>
        o.kind === 'Namespace'
          ? false
          : o.metadata.namespace !== undefined && scratch.has(o.metadata.namespace),
      );
      const created: { r: ResourceInfo; namespace?: string; name: string }[] = [];
      const removeAll = async () => {
        for (const c of [...created].reverse()) await client.delete(c.r, c.namespace, c.name);
      };
      ctx.defer(removeAll);
      let leftOut = 0;
      let compared = 0;
      const mismatches: string[] = [];
      try {
        for (const ns of scratch) {
          await client.create(nsRes, {
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: {
              name: ns,
              labels: { [LABEL_DRILL]: ctx.drillId, 'app.kubernetes.io/managed-by': 'lifeboat' },
            },
          });
          created.push({ r: nsRes, name: ns });
        }
        ctx.note(
          `lifeboat: restoring cluster-state ${snapshot.id.slice(0, 8)} into ${[...scratch].join(', ')}`,
        );
        for (const obj of desired) {
          ctx.signal.throwIfAborted();
          const o = neutralise(obj);
          if (!o) {
            leftOut++;
            continue;
          }
          const r = await client.resourceFor(o.apiVersion, o.kind);
          if (!r) {
            // A custom kind this cluster does not serve (its CRD is not installed): nothing to restore into.
            leftOut++;
            continue;
          }
          await client.create(r, o);
          // Namespaced objects go with their namespace, but delete them one by one anyway: a namespace
          // controller may be slow, and the cluster must be as it was when the drill ends.
          created.push({ r, namespace: o.metadata.namespace, name: o.metadata.name });
          const live = await client.get(r, o.metadata.namespace, o.metadata.name);
          const want = {
            data: o.data,
            binaryData: o.binaryData,
            spec: o.spec,
            labels: o.metadata.labels,
            type: o.type,
          };
          const got = live && {
            data: live.data,
            binaryData: live.binaryData,
            spec: live.spec,
            labels: live.metadata.labels,
            type: live.type,
          };
          const diff = got ? differences(JSON.parse(JSON.stringify(want)), got) : ['(missing)'];
          compared++;
          if (diff.length) mismatches.push(`${o.kind} ${o.metadata.name}: ${diff.slice(0, 3).join(', ')}`);
        }
        if (mismatches.length)
          throw new LifeboatError(
            'VERIFY_FAILED',
            `${mismatches.length} restored object(s) differ from the snapshot: ${mismatches.slice(0, 3).join('; ')}`,
            { hint: 'an admission webhook or policy changes objects on creation; check it, or the snapshot' },
          );
        return {
          summary: {
            namespaces: sourceNamespaces.length,
            objectsRestored: compared,
            objectsCompared: compared,
            objectsLeftOut: leftOut,
          },
        };
      } finally {
        await removeAll();
        ctx.note(`lifeboat: deleted scratch namespace(s) ${[...scratch].join(', ')}`);
      }
    },
    close: async () => {},
  };
}
