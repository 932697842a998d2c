/**
 * What restore drills (drill.ts) leave in the repository and what others read from it, kept free of the
 * sources so that retention, `recover --dry-run` and the metrics can import it cheaply:
 * - the drill layers, their snapshot types and RTO budgets (`drills.budgets` in lifeboat.yaml);
 * - the newest backup of a layer a drill should restore (never a `pre-restore` or drill snapshot);
 * - the newest *verified* restore point of each layer, which retention keeps whatever its policy says.
 *
 * A drill record is an OperationRecord (operation-record.ts) of kind `drill`: one step `read-data`, then
 * one step per layer with `layer`, `snapshot`, `snapshotTime`, `durationMs`, `budgetMs` and a summary.
 */
import { LifeboatError } from '../core/errors.ts';
import type { Snapshot, SnapshotType } from '../core/repository/model.ts';
import type { Repository } from '../core/repository/repository.ts';
import type { ConfigSetting } from '../cli/config-sections.ts';
import { listOperations } from './runner.ts';
import type { OperationRecord } from './operation-record.ts';

export const DRILL_LAYERS = ['mongodb', 'pvc', 'cluster-state', 'secrets'] as const;
export type DrillLayer = (typeof DRILL_LAYERS)[number];

export const LAYER_TYPE: Record<DrillLayer, SnapshotType> = {
  mongodb: 'mongodb',
  pvc: 'pvc-snapshots',
  'cluster-state': 'cluster-state',
  secrets: 'secrets',
};

/**
 * Layers whose backups are not in the repository: the secrets layer lives in Azure Key Vault (a manifest
 * per namespace and the values, src/sources/secrets/), so its drill has no snapshot to pick.
 */
export const VAULT_LAYERS: ReadonlySet<DrillLayer> = new Set(['secrets']);

/**
 * The guide's RTOs: MongoDB < 30 min, PVC < 15, cluster < 45, the whole drill < 90. The guide gives none
 * for secrets: 15 min (a restore of the Secrets is part of the cluster's RTO, and takes seconds).
 */
export const DEFAULT_BUDGETS: Record<DrillLayer | 'total', number> = {
  mongodb: 30 * 60_000,
  pvc: 15 * 60_000,
  'cluster-state': 45 * 60_000,
  secrets: 15 * 60_000,
  total: 90 * 60_000,
};

export const DRILL_BUDGETS_SETTING: ConfigSetting = {
  path: ['drills', 'budgets'],
  schema: {
    type: 'object',
    description:
      'RTO budget per drill layer and for the whole drill, e.g. 30m, 1h30m, 90s (over 80 % is a warning, over it a failure)',
    properties: Object.fromEntries(
      [...DRILL_LAYERS, 'total'].map((k) => [
        k,
        { type: 'string', description: 'a duration: 30m, 1h30m, 90s, 500ms (checked when the drill starts)' },
      ]),
    ),
    additionalProperties: false,
  },
};

export const DRILL_SMOKE_TEST_SETTING: ConfigSetting = {
  path: ['drills', 'smoke-test'],
  schema: {
    type: 'object',
    description: 'HTTP GET after the drill (e.g. Rocket.Chat /api/info): must answer 2xx',
    properties: {
      url: { type: 'string', description: 'http(s) URL (required)' },
      'expect-field': { type: 'string', description: 'a field of the JSON answer that must be truthy' },
      wait: { type: 'string', description: 'keep trying this long (a duration, default 2m)' },
    },
    additionalProperties: false,
  },
};

/** `30m`, `1h30m`, `90s`, `250ms` → milliseconds. */
export function parseBudget(text: string, what: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let consumed = 0;
  let ms = 0;
  for (const m of text.matchAll(re)) {
    ms += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    consumed += m[0].length;
  }
  if (!text || consumed !== text.length || ms <= 0)
    throw new LifeboatError('CONFIG', `${what} "${text}" is not a duration`, {
      hint: 'write e.g. 30m, 1h30m, 90s or 500ms',
    });
  return ms;
}

/** Budgets from `drills.budgets` (a map of layer → duration) over the guide's defaults. */
export function drillBudgets(setting: unknown): Record<DrillLayer | 'total', number> {
  const out = { ...DEFAULT_BUDGETS };
  if (setting && typeof setting === 'object')
    for (const [k, v] of Object.entries(setting as Record<string, unknown>)) {
      if (!(k in out))
        throw new LifeboatError('CONFIG', `drills.budgets.${k} is not a drill layer`, {
          hint: `use ${[...DRILL_LAYERS, 'total'].join(', ')}`,
        });
      out[k as DrillLayer | 'total'] = parseBudget(String(v), `drills.budgets.${k}`);
    }
  return out;
}

/**
 * The newest backup of a layer (listSnapshots lists backups only: pre-restore and drill snapshots are left
 * out), or undefined; always undefined for a layer kept outside the repository (VAULT_LAYERS).
 */
export async function newestBackup(repo: Repository, layer: DrillLayer): Promise<Snapshot | undefined> {
  if (VAULT_LAYERS.has(layer)) return undefined;
  return (await repo.listSnapshots({ type: LAYER_TYPE[layer] })).at(-1);
}

/** Drill records, newest first. */
export function listDrills(repo: Repository): Promise<OperationRecord[]> {
  return listOperations(repo, 'drill');
}

/**
 * The newest verified restore point of each layer: the snapshot of the newest drill step that restored
 * and verified that layer (success or warning). Map snapshot id → the drill's id.
 */
export function verifiedRestorePoints(drills: OperationRecord[]): Map<string, string> {
  const best = new Map<string, { snapshot: string; drill: string; at: string }>();
  for (const d of drills) {
    for (const s of d.steps) {
      if (!s.layer || !s.snapshot || (s.status !== 'success' && s.status !== 'warning')) continue;
      const at = s.finishedAt ?? d.startedAt;
      const cur = best.get(s.layer);
      if (!cur || at > cur.at) best.set(s.layer, { snapshot: s.snapshot, drill: d.id, at });
    }
  }
  return new Map([...best.values()].map((b) => [b.snapshot, b.drill]));
}
