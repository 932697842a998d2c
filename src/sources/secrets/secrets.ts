/**
 * Kubernetes Secrets ↔ Azure Key Vault (the guide's "Secrets Management" layer, and step 4 of its
 * cluster recovery: secrets come back from the vault before the applications are deployed, with nothing
 * but vault access and a kubeconfig).
 *
 * One Key Vault secret per Kubernetes Secret, holding canonical JSON of {namespace, name, type, labels,
 * annotations, data, immutable}. Per Secret rather than per key because a Secret is what Kubernetes
 * reads atomically (a TLS pair must never come back half old, half new), its type and metadata travel
 * with its data, and it costs one write instead of one per key against the vault's 300 writes / 10 s.
 * Values over one Key Vault secret are split into parts (names.ts), each tagged with the whole value's
 * digest, joined and verified on the way back.
 *
 * Digests are SHA-256 over a random per-namespace salt and the payload: tags are readable with mere
 * `list` permission, and an unsalted hash of a short password is a guessing oracle. The salt lives in
 * the namespace's manifest value (readable only with `get`).
 *
 * The manifest (`lifeboat-manifest-NAMESPACE`) lists every Secret written, with its vault name, part
 * count and digest: sync reads it and never guesses from names.
 */
import { createHash, randomBytes } from 'node:crypto';
import { LifeboatError, isLifeboatError } from '../../core/errors.ts';
import type { KubeClient, ResourceInfo } from '../kubernetes/client.ts';
import { resourcePath } from '../kubernetes/client.ts';
import type { KubeObject } from '../kubernetes/objects.ts';
import { manifestName, partName, vaultName } from './names.ts';
import { MANAGED_BY, MANAGED_BY_TAG, type SecretsVault, type VaultEntry } from './vault.ts';

/** Characters per Key Vault value: below the documented 25 KB, all ASCII (non-ASCII is \u-escaped). */
export const PART_SIZE = 24_000;

const SECRETS: ResourceInfo = {
  group: '',
  version: 'v1',
  resource: 'secrets',
  kind: 'Secret',
  namespaced: true,
  verbs: [],
};
const NAMESPACES: ResourceInfo = {
  group: '',
  version: 'v1',
  resource: 'namespaces',
  kind: 'Namespace',
  namespaced: false,
  verbs: [],
};

export interface SecretPayload {
  namespace: string;
  name: string;
  type: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  data: Record<string, string>;
  immutable: boolean;
}

export interface ManifestEntry {
  namespace: string;
  name: string;
  type: string;
  vaultName: string;
  parts: number;
  digest: string;
}

export interface Manifest {
  format: 'lifeboat-secrets-manifest/v1';
  namespace: string;
  salt: string;
  secrets: ManifestEntry[];
}

function sortKeys(o: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(o ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Canonical, ASCII-only JSON: the same Secret always serialises to the same bytes. */
function canonicalJson(v: unknown): string {
  return JSON.stringify(v).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export function payloadOf(s: KubeObject): SecretPayload {
  return {
    namespace: s.metadata.namespace ?? '',
    name: s.metadata.name,
    type: (s.type as string | undefined) ?? 'Opaque',
    labels: sortKeys(s.metadata.labels),
    annotations: sortKeys(s.metadata.annotations),
    data: sortKeys(s.data as Record<string, string> | undefined),
    immutable: s.immutable === true,
  };
}

export function serialise(p: SecretPayload): string {
  return canonicalJson({
    namespace: p.namespace,
    name: p.name,
    type: p.type,
    labels: p.labels,
    annotations: p.annotations,
    data: p.data,
    immutable: p.immutable,
  });
}

function sha256(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

export function secretDigest(salt: string, serialised: string): string {
  return sha256(salt, '\0', serialised);
}

export function splitParts(value: string): string[] {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += PART_SIZE) parts.push(value.slice(i, i + PART_SIZE));
  return parts.length ? parts : [''];
}

/** Why a Secret is not backed up by default; undefined when it is. */
export function skipReason(s: KubeObject): string | undefined {
  if (s.type === 'kubernetes.io/service-account-token')
    return 'service-account token (the cluster issues new ones)';
  if (s.type === 'helm.sh/release.v1' || s.metadata.name.startsWith('sh.helm.release.v1.'))
    return 'Helm release record (cluster-state backup keeps these)';
  return undefined;
}

async function backupNamespaces(client: KubeClient, given: string[]): Promise<string[]> {
  if (given.length) return [...new Set(given)].sort();
  const all = await client.list(NAMESPACES);
  return all
    .map((n) => n.metadata.name)
    .filter((n) => !n.startsWith('kube-'))
    .sort();
}

// ---------------------------------------------------------------------------------------------- vault I/O

interface Owned {
  ok: boolean;
  reason?: string;
}

/** May Lifeboat write `name` for `namespace/secret`? Only if absent or its own (and for the same Secret). */
function ownership(entry: VaultEntry | undefined, namespace: string, secret?: string): Owned {
  if (!entry) return { ok: true };
  if (entry.tags[MANAGED_BY_TAG] !== MANAGED_BY)
    return { ok: false, reason: `${entry.name} exists without ${MANAGED_BY_TAG}=${MANAGED_BY}; left alone` };
  if (
    entry.tags['k8s-namespace'] !== namespace ||
    (secret !== undefined && entry.tags['k8s-name'] !== secret)
  )
    return { ok: false, reason: `${entry.name} belongs to another Secret (tags say so); left alone` };
  return { ok: true };
}

function partTags(
  kind: 'secret' | 'manifest',
  namespace: string,
  name: string | undefined,
  type: string | undefined,
  digest: string,
  index: number,
  count: number,
): Record<string, string> {
  const tags: Record<string, string> = {
    [MANAGED_BY_TAG]: MANAGED_BY,
    'lifeboat-kind': kind,
    'k8s-namespace': namespace,
    digest,
    part: `${index}/${count}`,
  };
  // Kubernetes names are ≤ 253 characters and types rarely long; a tag value holds 256.
  if (name !== undefined) tags['k8s-name'] = name;
  if (type !== undefined && type.length <= 256) tags['k8s-type'] = type;
  return tags;
}

/** Is the value stored under `base` already exactly `digest` in `count` parts? (tags only: no reads) */
function unchanged(listing: Map<string, VaultEntry>, base: string, digest: string, count: number): boolean {
  for (let i = 1; i <= count; i++) {
    const t = listing.get(partName(base, i).toLowerCase())?.tags;
    if (t?.digest !== digest || t.part !== `${i}/${count}`) return false;
  }
  return true;
}

async function writeParts(
  vault: SecretsVault,
  base: string,
  value: string,
  tagsFor: (index: number, count: number) => Record<string, string>,
): Promise<void> {
  const parts = splitParts(value);
  // Part 1 last: its digest tag says the whole value is complete.
  for (let i = parts.length; i >= 1; i--)
    await vault.set(partName(base, i), parts[i - 1], tagsFor(i, parts.length));
}

/** Reads and joins the parts of `base`, verifying each part's tags and the whole value's digest. */
export async function readParts(
  vault: SecretsVault,
  base: string,
  count: number,
  digest: string,
  check: (value: string) => string,
): Promise<string> {
  let value = '';
  for (let i = 1; i <= count; i++) {
    const part = await vault.get(partName(base, i));
    if (!part)
      throw new LifeboatError('NOT_FOUND', `${vault.url}: part ${i}/${count} of ${base} is missing`, {
        hint: 'run `lifeboat secrets backup` again from a cluster that has the Secret',
      });
    if (part.tags[MANAGED_BY_TAG] !== MANAGED_BY || part.tags.digest !== digest)
      throw new LifeboatError(
        'INTEGRITY',
        `${vault.url}: part ${i}/${count} of ${base} is from another backup`,
        {
          hint: 'a backup was interrupted or the vault was edited; run `lifeboat secrets backup` again',
        },
      );
    value += part.value;
  }
  if (check(value) !== digest)
    throw new LifeboatError('INTEGRITY', `${vault.url}: ${base} does not match its digest`, {
      hint: 'the vault value was changed outside Lifeboat; run `lifeboat secrets backup` again',
    });
  return value;
}

export async function readManifest(
  vault: SecretsVault,
  namespace: string,
  listing?: Map<string, VaultEntry>,
): Promise<Manifest | undefined> {
  const base = manifestName(namespace);
  const head = listing ? listing.get(base) : await vault.get(base);
  if (!head || head.tags[MANAGED_BY_TAG] !== MANAGED_BY || head.tags['lifeboat-kind'] !== 'manifest')
    return undefined;
  const count = Number(head.tags.part?.split('/')[1] ?? 1);
  const text = await readParts(vault, base, count, head.tags.digest ?? '', (v) => sha256(v));
  return JSON.parse(text) as Manifest;
}

// ---------------------------------------------------------------------------------------------- backup

/** `recovered`: the name was soft-deleted; Lifeboat recovered it, then wrote the new value. */
export type BackupAction = 'created' | 'updated' | 'recovered' | 'unchanged' | 'conflict';

export interface SecretBackupItem {
  namespace: string;
  name: string;
  type: string;
  vaultName: string;
  parts: number;
  digest: string;
  action: BackupAction;
  reason?: string;
}

export interface SecretsBackupResult {
  vault: string;
  dryRun: boolean;
  namespaces: string[];
  secrets: SecretBackupItem[];
  skipped: { namespace: string; name: string; reason: string }[];
  /** New Key Vault versions written (0 when nothing changed). */
  writes: number;
  conflicts: number;
}

export interface SecretsBackupOptions {
  client: KubeClient;
  vault: SecretsVault;
  namespaces: string[];
  selector?: string;
  dryRun?: boolean;
  onProgress?: (done: number, total: number, what: string) => void;
}

export async function backupSecrets(o: SecretsBackupOptions): Promise<SecretsBackupResult> {
  const namespaces = await backupNamespaces(o.client, o.namespaces);
  const listing = await o.vault.list();
  const result: SecretsBackupResult = {
    vault: o.vault.url,
    dryRun: o.dryRun === true,
    namespaces,
    secrets: [],
    skipped: [],
    writes: 0,
    conflicts: 0,
  };
  for (const namespace of namespaces) {
    const all = await o.client.list(SECRETS, namespace, o.selector);
    const chosen = all.filter((s) => {
      const reason = skipReason(s);
      if (reason) result.skipped.push({ namespace, name: s.metadata.name, reason });
      return !reason;
    });
    if (!chosen.length && !o.selector) continue;
    // A damaged or half-written manifest is replaced (with a new salt, so every Secret is written
    // again); any other failure (permission, network) stops the run.
    const previous = await readManifest(o.vault, namespace, listing).catch((e: unknown) => {
      if (isLifeboatError(e, 'INTEGRITY') || isLifeboatError(e, 'NOT_FOUND')) return undefined;
      throw e;
    });
    const mBase = manifestName(namespace);
    const mOwner = ownership(listing.get(mBase), namespace);
    if (!mOwner.ok) {
      result.conflicts++;
      result.secrets.push(
        ...chosen.map((s) => ({
          namespace,
          name: s.metadata.name,
          type: payloadOf(s).type,
          vaultName: vaultName(namespace, s.metadata.name),
          parts: 0,
          digest: '',
          action: 'conflict' as const,
          reason: `manifest ${mOwner.reason}`,
        })),
      );
      continue;
    }
    const salt = previous?.salt ?? randomBytes(16).toString('hex');
    const entries = new Map<string, ManifestEntry>();
    // With a selector only part of the namespace is in scope: keep the rest of the manifest.
    if (o.selector) for (const e of previous?.secrets ?? []) entries.set(e.name, e);
    let done = 0;
    for (const s of chosen) {
      const payload = payloadOf(s);
      const text = serialise(payload);
      const digest = secretDigest(salt, text);
      const base = vaultName(namespace, payload.name);
      const count = splitParts(text).length;
      const item: SecretBackupItem = {
        namespace,
        name: payload.name,
        type: payload.type,
        vaultName: base,
        parts: count,
        digest,
        action: 'unchanged',
      };
      const refused = Array.from({ length: count }, (_, i) =>
        ownership(listing.get(partName(base, i + 1).toLowerCase()), namespace, payload.name),
      ).find((r) => !r.ok);
      if (refused) {
        item.action = 'conflict';
        item.reason = refused.reason;
        result.conflicts++;
        // What the vault held for it before, if Lifeboat wrote it earlier under this name, stays listed.
        const old = previous?.secrets.find((e) => e.name === payload.name);
        if (old) entries.set(old.name, old);
      } else {
        if (!unchanged(listing, base, digest, count)) {
          item.action = listing.has(base.toLowerCase()) ? 'updated' : 'created';
          if (!o.dryRun)
            await writeParts(o.vault, base, text, (i, n) =>
              partTags('secret', namespace, payload.name, payload.type, digest, i, n),
            );
          if (o.vault.recovered.has(base.toLowerCase())) item.action = 'recovered';
        }
        entries.set(payload.name, {
          namespace,
          name: payload.name,
          type: payload.type,
          vaultName: base,
          parts: count,
          digest,
        });
      }
      result.secrets.push(item);
      o.onProgress?.(++done, chosen.length, `${namespace}/${payload.name}`);
    }
    const manifest: Manifest = {
      format: 'lifeboat-secrets-manifest/v1',
      namespace,
      salt,
      secrets: [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
    };
    // No timestamp inside: an unchanged namespace gives a byte-identical manifest, hence no write.
    const mText = canonicalJson(manifest);
    const mDigest = sha256(mText);
    const mCount = splitParts(mText).length;
    if (!o.dryRun && !unchanged(listing, mBase, mDigest, mCount))
      await writeParts(o.vault, mBase, mText, (i, n) =>
        partTags('manifest', namespace, undefined, undefined, mDigest, i, n),
      );
  }
  result.writes = o.vault.writes;
  return result;
}

// ---------------------------------------------------------------------------------------------- sync

export type SyncAction =
  | 'created'
  | 'updated'
  | 'unchanged'
  | 'would-create'
  | 'would-update'
  | 'in-vault-only'
  | 'in-cluster-only'
  | 'changed'
  | 'same';

export interface SecretSyncItem {
  namespace: string;
  name: string;
  type: string;
  action: SyncAction;
  vaultDigest?: string;
  clusterDigest?: string;
}

export interface SecretsSyncResult {
  vault: string;
  mode: 'sync' | 'dry-run' | 'diff';
  namespaces: string[];
  createdNamespaces: string[];
  secrets: SecretSyncItem[];
}

export interface SecretsSyncOptions {
  client: KubeClient;
  vault: SecretsVault;
  namespaces: string[];
  secrets: string[];
  mode: 'sync' | 'dry-run' | 'diff';
  /** Create a missing namespace (default true: the DR runbook syncs into an empty cluster). */
  createNamespaces?: boolean;
}

async function manifestsFor(vault: SecretsVault, namespaces: string[]): Promise<Manifest[]> {
  if (namespaces.length) {
    const out: Manifest[] = [];
    for (const ns of [...new Set(namespaces)].sort()) {
      const m = await readManifest(vault, ns);
      if (!m)
        throw new LifeboatError('NOT_FOUND', `${vault.url} holds no Lifeboat manifest for namespace ${ns}`, {
          hint: `run \`lifeboat secrets backup --namespace ${ns}\` first, or check --vault`,
        });
      out.push(m);
    }
    return out;
  }
  const listing = await vault.list();
  const names = [...listing.values()]
    .filter((e) => e.tags[MANAGED_BY_TAG] === MANAGED_BY && e.tags['lifeboat-kind'] === 'manifest')
    .filter((e) => e.tags.part === undefined || e.tags.part.startsWith('1/'))
    .map((e) => e.tags['k8s-namespace'])
    .sort();
  const out: Manifest[] = [];
  for (const ns of names) {
    const m = await readManifest(vault, ns, listing);
    if (m) out.push(m);
  }
  return out;
}

function toSecretObject(p: SecretPayload): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: p.name,
      namespace: p.namespace,
      ...(Object.keys(p.labels).length ? { labels: p.labels } : {}),
      ...(Object.keys(p.annotations).length ? { annotations: p.annotations } : {}),
    },
    type: p.type,
    data: p.data,
    ...(p.immutable ? { immutable: true } : {}),
  };
}

export async function syncSecrets(o: SecretsSyncOptions): Promise<SecretsSyncResult> {
  const manifests = await manifestsFor(o.vault, o.namespaces);
  const wanted = new Set(o.secrets);
  const result: SecretsSyncResult = {
    vault: o.vault.url,
    mode: o.mode,
    namespaces: manifests.map((m) => m.namespace),
    createdNamespaces: [],
    secrets: [],
  };
  const found = new Set<string>();
  for (const m of manifests) {
    const entries = m.secrets.filter((e) => !wanted.size || wanted.has(e.name));
    entries.forEach((e) => found.add(e.name));
    const nsExists = (await o.client.get(NAMESPACES, undefined, m.namespace)) !== undefined;
    const live = new Map<string, KubeObject>();
    if (nsExists) for (const s of await o.client.list(SECRETS, m.namespace)) live.set(s.metadata.name, s);
    const liveDigest = (s: KubeObject | undefined) => s && secretDigest(m.salt, serialise(payloadOf(s)));

    if (o.mode === 'diff') {
      for (const e of entries) {
        const clusterDigest = liveDigest(live.get(e.name));
        result.secrets.push({
          namespace: m.namespace,
          name: e.name,
          type: e.type,
          action:
            clusterDigest === undefined ? 'in-vault-only' : clusterDigest === e.digest ? 'same' : 'changed',
          vaultDigest: e.digest,
          clusterDigest,
        });
      }
      if (!wanted.size) {
        const inVault = new Set(m.secrets.map((e) => e.name));
        for (const s of live.values())
          if (!inVault.has(s.metadata.name) && !skipReason(s))
            result.secrets.push({
              namespace: m.namespace,
              name: s.metadata.name,
              type: payloadOf(s).type,
              action: 'in-cluster-only',
              clusterDigest: liveDigest(s),
            });
      }
      continue;
    }

    if (!nsExists && o.mode === 'sync' && entries.length) {
      if (o.createNamespaces === false)
        throw new LifeboatError('NOT_FOUND', `namespace ${m.namespace} does not exist`, {
          hint: 'create it first, or leave out --no-create-namespace',
        });
      await o.client.create(NAMESPACES, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: m.namespace },
      });
      result.createdNamespaces.push(m.namespace);
    }
    for (const e of entries) {
      const before = live.get(e.name);
      const item: SecretSyncItem = {
        namespace: m.namespace,
        name: e.name,
        type: e.type,
        action: 'unchanged',
        vaultDigest: e.digest,
        clusterDigest: liveDigest(before),
      };
      result.secrets.push(item);
      if (item.clusterDigest === e.digest) continue;
      if (o.mode === 'dry-run') {
        item.action = before ? 'would-update' : 'would-create';
        continue;
      }
      const text = await readParts(o.vault, e.vaultName, e.parts, e.digest, (v) => secretDigest(m.salt, v));
      const payload = JSON.parse(text) as SecretPayload;
      if (payload.namespace !== m.namespace || payload.name !== e.name)
        throw new LifeboatError(
          'INTEGRITY',
          `${e.vaultName} holds ${payload.namespace}/${payload.name}, not ${m.namespace}/${e.name}`,
          {
            hint: 'the vault was edited outside Lifeboat; run `lifeboat secrets backup` again',
          },
        );
      const obj = toSecretObject(payload);
      if (before) {
        // Replace (not merge): the Secret becomes exactly what was backed up, labels and all.
        obj.metadata.resourceVersion = (before.metadata as { resourceVersion?: string }).resourceVersion;
        await o.client.request(
          'PUT',
          resourcePath(SECRETS, m.namespace, e.name),
          `replace secret ${m.namespace}/${e.name}`,
          obj,
        );
        item.action = 'updated';
      } else {
        await o.client.create(SECRETS, obj);
        item.action = 'created';
      }
      // Read back: the cluster must now hold exactly the backed-up bytes.
      const after = await o.client.get(SECRETS, m.namespace, e.name);
      item.clusterDigest = liveDigest(after);
      if (item.clusterDigest !== e.digest)
        throw new LifeboatError(
          'VERIFY_FAILED',
          `secret ${m.namespace}/${e.name} reads back different from the vault`,
          {
            hint: 'an admission webhook or controller changed it on write; check the cluster, then sync again',
          },
        );
    }
  }
  const missing = [...wanted].filter((n) => !found.has(n));
  if (missing.length)
    throw new LifeboatError('NOT_FOUND', `not in the vault's manifests: ${missing.join(', ')}`, {
      hint: 'check the name and --namespace; `lifeboat secrets sync --diff` lists what the vault holds',
    });
  return result;
}
