/**
 * Restore planning without I/O: what would happen to each object, and an object-by-object diff for
 * `--diff`. The caller fetches the live objects (and, for --diff, what a server-side dry-run apply would
 * produce); this module only compares.
 */
import { objectKey, type KubeObject } from './objects.ts';

/** Velero's --existing-resource-policy: `none` leaves an existing object as it is, `update` applies ours. */
export type ExistingPolicy = 'none' | 'update';
export type PlannedAction = 'create' | 'update' | 'skip';

export interface Change {
  /** JSON path, e.g. `data.SITE_URL` or `spec.template.spec.containers[0].image`. */
  path: string;
  op: 'add' | 'remove' | 'change';
  /** Omitted for Secrets: their values are never shown. */
  from?: unknown;
  to?: unknown;
}

export interface PlanEntry {
  key: string;
  kind: string;
  namespace?: string;
  name: string;
  action: PlannedAction;
  reason: string;
}

/** Fields that differ between any two reads of an object and say nothing about its content. */
const NOISE = new Set([
  'metadata.uid',
  'metadata.resourceVersion',
  'metadata.generation',
  'metadata.creationTimestamp',
  'metadata.managedFields',
  'metadata.selfLink',
  'status',
]);

function isObj(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function walk(path: string, a: unknown, b: unknown, out: Change[]): void {
  if (NOISE.has(path)) return;
  if (isObj(a) && isObj(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const p = path ? `${path}.${k}` : k;
      if (!(k in b)) {
        if (!NOISE.has(p)) out.push({ path: p, op: 'remove', from: a[k] });
      } else if (!(k in a)) {
        if (!NOISE.has(p)) out.push({ path: p, op: 'add', to: b[k] });
      } else walk(p, a[k], b[k], out);
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((v, i) => walk(`${path}[${i}]`, v, b[i], out));
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path, op: 'change', from: a, to: b });
}

/**
 * Differences from `live` to `next` (what the object would become). For Secrets the values are dropped
 * (only paths are reported), so a diff can be printed and logged safely.
 */
export function diffObjects(live: KubeObject, next: KubeObject): Change[] {
  const out: Change[] = [];
  walk('', live, next, out);
  if (live.kind === 'Secret' || next.kind === 'Secret') {
    return out.map((c) =>
      c.path.startsWith('data') || c.path.startsWith('stringData') ? { path: c.path, op: c.op } : c,
    );
  }
  return out;
}

/** Decides per object, given what exists in the target (`live`, by objectKey). */
export function planRestore(
  desired: KubeObject[],
  live: Map<string, KubeObject>,
  policy: ExistingPolicy,
): PlanEntry[] {
  return desired.map((o) => {
    const key = objectKey(o);
    const base = { key, kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name };
    if (!live.has(key)) return { ...base, action: 'create', reason: 'not in the cluster' };
    if (policy === 'none')
      return {
        ...base,
        action: 'skip',
        reason: 'already exists (use --existing-resource-policy=update to overwrite)',
      };
    return {
      ...base,
      action: 'update',
      reason: 'exists; server-side apply (--existing-resource-policy=update)',
    };
  });
}

/** One line per change for humans; Secret values never appear (diffObjects dropped them). */
export function formatChange(c: Change): string {
  const show = (v: unknown) => (v === undefined ? '' : JSON.stringify(v).slice(0, 200));
  if (c.op === 'add') return `+ ${c.path}${'to' in c ? ` = ${show(c.to)}` : ''}`;
  if (c.op === 'remove') return `- ${c.path}${'from' in c ? ` (was ${show(c.from)})` : ''}`;
  return `~ ${c.path}${'from' in c ? `: ${show(c.from)} -> ${show(c.to)}` : ' (changed)'}`;
}
