/**
 * Secrets restore drill: the secrets layer lives in Azure Key Vault (`lifeboat secrets backup`: one
 * manifest per namespace, one vault secret per Secret; src/sources/secrets/), not in the repository, so
 * this drill has no snapshot (`source: 'vault'`): it picks the namespace manifests Lifeboat wrote.
 *
 * For each manifest, every Secret it lists is read from the vault part by part, its salted digest
 * verified (readParts), and created in a scratch namespace `lifeboat-drill-<id>-secrets-<n>` (labelled
 * `lifeboat.io/drill=<id>`, like the cluster-state drill's — whose scratch namespaces are
 * `lifeboat-drill-<id>-<n>`, hence the `secrets` infix: a namespace being deleted keeps its name a while).
 * It is read back from the API server, and the digest of what was read (with the original namespace)
 * must equal the manifest's: data, type, labels, annotations and immutability as the vault held them.
 * Then the scratch namespace is deleted — in a `finally` and in the command's defer list.
 *
 * Values are never logged, kept or put in an error: only namespaces, names and keys.
 */
import { isLifeboatError, LifeboatError } from '../../core/errors.ts';
import type { KubeClient } from '../../sources/kubernetes/client.ts';
import type { KubeObject } from '../../sources/kubernetes/objects.ts';
import {
  payloadOf,
  readManifest,
  readParts,
  secretDigest,
  serialise,
  type Manifest,
  type SecretPayload,
} from '../../sources/secrets/secrets.ts';
import { MANAGED_BY, MANAGED_BY_TAG, type SecretsVault } from '../../sources/secrets/vault.ts';
import { clusterStateDrill } from './cluster-state.ts';
import { LABEL_DRILL } from './pvc.ts';
import type { LayerDrill, LayerDrillContext, LayerDrillResult, RestorePoint } from './types.ts';

export function secretsScratchNamespace(drillId: string, n: number): string {
  return `lifeboat-drill-${drillId}-secrets-${n}`;
}

/** Which fields of the read-back payload differ from the vault's (names of fields and keys only). */
function differingFields(want: SecretPayload, got: SecretPayload): string[] {
  const out: string[] = [];
  if (want.type !== got.type) out.push('type');
  if (want.immutable !== got.immutable) out.push('immutable');
  for (const field of ['data', 'labels', 'annotations'] as const) {
    const keys = new Set([...Object.keys(want[field]), ...Object.keys(got[field])]);
    for (const k of [...keys].sort()) if (want[field][k] !== got[field][k]) out.push(`${field}.${k}`);
  }
  return out;
}

export interface SecretsDrillOptions {
  /** Namespaces whose manifests are drilled; empty: every manifest Lifeboat wrote in the vault. */
  namespaces?: string[];
}

export function secretsDrill(
  client: KubeClient,
  vault: SecretsVault,
  o: SecretsDrillOptions = {},
): LayerDrill {
  let manifests: Manifest[] = [];
  return {
    layer: 'secrets',
    source: 'vault',
    async pick(ctx: LayerDrillContext): Promise<RestorePoint | undefined> {
      const listing = await vault.list();
      const heads = [...listing.values()].filter(
        (e) =>
          e.tags[MANAGED_BY_TAG] === MANAGED_BY &&
          e.tags['lifeboat-kind'] === 'manifest' &&
          (e.tags.part === undefined || e.tags.part.startsWith('1/')) &&
          (!o.namespaces?.length || o.namespaces.includes(e.tags['k8s-namespace'] ?? '')),
      );
      const namespaces = heads.map((e) => e.tags['k8s-namespace'] ?? '').sort();
      manifests = [];
      for (const ns of namespaces) {
        ctx.signal.throwIfAborted();
        const m = await readManifest(vault, ns, listing);
        if (m) manifests.push(m);
      }
      if (!manifests.length) return undefined;
      // Part 1 of a manifest is written last, and only when the namespace's Secrets changed.
      const times = heads.map((e) => e.updatedOn).filter((t): t is string => t !== undefined);
      const newest = times.sort().at(-1);
      return {
        summary: {
          vault: vault.url,
          manifests: manifests.length,
          namespaces: manifests.map((m) => m.namespace).join(','),
          secrets: manifests.reduce((n, m) => n + m.secrets.length, 0),
          ...(newest ? { backupTime: newest } : {}),
        },
        ...(newest ? { time: newest } : {}),
      };
    },
    // The same scratch namespaces (label lifeboat.io/drill) as the cluster-state drill's.
    cleanupLeftovers: (ctx) => clusterStateDrill(client).cleanupLeftovers(ctx),
    async run(ctx: LayerDrillContext): Promise<LayerDrillResult> {
      const nsRes = await client.mustResource('v1', 'Namespace');
      const secretRes = await client.mustResource('v1', 'Secret');
      const scratch = manifests.map((_, i) => secretsScratchNamespace(ctx.drillId, i));
      const created: { namespace?: string; name: string; ns: boolean }[] = [];
      const removeAll = async () => {
        for (const c of [...created].reverse())
          await client.delete(c.ns ? nsRes : secretRes, c.namespace, c.name);
        created.length = 0;
      };
      ctx.defer(removeAll);
      const problems: string[] = [];
      let damaged = false;
      let restored = 0;
      let verified = 0;
      try {
        for (const [i, manifest] of manifests.entries()) {
          const ns = manifest.namespace;
          const target = scratch[i];
          await client.create(nsRes, {
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: {
              name: target,
              labels: { [LABEL_DRILL]: ctx.drillId, 'app.kubernetes.io/managed-by': 'lifeboat' },
            },
          });
          created.push({ name: target, ns: true });
          ctx.note(`lifeboat: restoring the Secrets of ${ns} from ${vault.url} into ${target}`);
          for (const entry of manifest.secrets) {
            ctx.signal.throwIfAborted();
            const what = `secret ${ns}/${entry.name} (Key Vault ${entry.vaultName})`;
            let payload: SecretPayload;
            try {
              const text = await readParts(vault, entry.vaultName, entry.parts, entry.digest, (v) =>
                secretDigest(manifest.salt, v),
              );
              payload = JSON.parse(text) as SecretPayload;
            } catch (e) {
              if (!isLifeboatError(e, 'INTEGRITY') && !isLifeboatError(e, 'NOT_FOUND')) throw e;
              damaged = true;
              problems.push(
                `${what}: ${
                  isLifeboatError(e, 'NOT_FOUND')
                    ? 'a part is missing'
                    : /digest/.test((e as Error).message)
                      ? 'does not match the manifest digest (changed outside Lifeboat)'
                      : 'a part is from another backup'
                }`,
              );
              continue;
            }
            if (payload.namespace !== ns || payload.name !== entry.name) {
              damaged = true;
              problems.push(`${what}: holds another Secret than the manifest lists`);
              continue;
            }
            const obj: KubeObject = {
              apiVersion: 'v1',
              kind: 'Secret',
              metadata: {
                name: payload.name,
                namespace: target,
                ...(Object.keys(payload.labels).length ? { labels: payload.labels } : {}),
                ...(Object.keys(payload.annotations).length ? { annotations: payload.annotations } : {}),
              },
              type: payload.type,
              data: payload.data,
              ...(payload.immutable ? { immutable: true } : {}),
            };
            await client.create(secretRes, obj);
            created.push({ namespace: target, name: payload.name, ns: false });
            restored++;
            const live = await client.get(secretRes, target, payload.name);
            if (!live) {
              problems.push(`${what}: not found in ${target} after it was created`);
              continue;
            }
            const back = { ...payloadOf(live), namespace: ns };
            if (secretDigest(manifest.salt, serialise(back)) !== entry.digest) {
              const fields = differingFields(payload, back);
              problems.push(
                `${what}: read back from ${target} differs (${fields.slice(0, 4).join(', ') || 'digest'})`,
              );
              continue;
            }
            verified++;
          }
        }
        if (problems.length)
          throw new LifeboatError(
            damaged ? 'INTEGRITY' : 'VERIFY_FAILED',
            `${problems.length} Secret(s) could not be restored as backed up: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ''}`,
            {
              hint: damaged
                ? 'the vault was changed outside Lifeboat; run `lifeboat secrets backup` again from the cluster'
                : 'an admission webhook or policy changes Secrets on creation; check it',
            },
          );
        return {
          summary: {
            secretsRestored: restored,
            secretsVerified: verified,
            scratchNamespaces: scratch.join(','),
          },
        };
      } finally {
        await removeAll();
        if (scratch.length) ctx.note(`lifeboat: deleted scratch namespace(s) ${scratch.join(', ')}`);
      }
    },
    close: async () => {},
  };
}
