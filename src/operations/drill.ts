/**
 * Restore drills (`lifeboat integrity-check`): the guide's backup-integrity-check.sh and its testing
 * schedule, automated. One drill is one operation (runner.ts, kind `drill`, budget `mark`: the time is
 * what is measured):
 *
 * 1. `read-data`: `check --read-data` over a rotating subset of the packs — with 10 %, the n-th drill
 *    reads subset n of 10 (`n/10`), so all data is read within ten drills. The counter is the subset the
 *    previous drill's record says it read.
 * 2. one step per layer: the newest backup of the layer (for secrets, kept in Key Vault rather than the
 *    repository, the namespace manifests there: no snapshot, see vaultLayerStep) restored into a scratch target, verified (counts,
 *    content hashes, digests) and removed again — in a `finally`, and once more when the command ends, so
 *    a failed or interrupted drill leaves nothing behind; scratch targets of a drill that was killed
 *    outright are found by their name/label and removed by the next drill.
 * 3. each step timed against its RTO budget (over 80 % a warning, over it a failure), and the whole drill
 *    against the total budget;
 * 4. an optional smoke test (an HTTP GET that must answer 2xx).
 *
 * The record (the OperationRecord) is what `recover --dry-run` and the metrics read, and what retention
 * reads to keep the newest verified restore point of each layer (drill-records.ts).
 */
import { hostname } from 'node:os';
import { LifeboatError } from '../core/errors.ts';
import { checkRepository } from '../core/repository/check.ts';
import type { Repository } from '../core/repository/repository.ts';
import { LAYER_TYPE, VAULT_LAYERS, listDrills, newestBackup, type DrillLayer } from './drill-records.ts';
import type { OperationRecord, StepRecord } from './operation-record.ts';
import { newOperationId, runOperation, type StepDefinition } from './runner.ts';
import { runSmokeTest, smokeSummary, type SmokeTest } from './smoke.ts';
import type { LayerDrill, LayerDrillContext, RestorePoint } from './drills/types.ts';

export interface DrillOptions {
  /** Reads the data (cancelled by `signal`). */
  repo: Repository;
  /** Where the drill record goes: must not be cancelled by `signal` (see runner.ts). */
  records: Repository;
  /**
   * The layers to drill, in order; `open` connects (only when the layer has a backup to drill). A layer
   * that is not `required` (`--component all`) and has no backup is recorded as skipped; one with a
   * `skipReason` (not configured: the secrets layer without a Key Vault) is skipped, saying why.
   */
  layers: { layer: DrillLayer; required: boolean; open(): Promise<LayerDrill>; skipReason?: string }[];
  budgets: Record<DrillLayer | 'total', number>;
  /** `p%` (rotating `n/t` subsets, t = 100/p), `n/t` as given, or undefined to read nothing. */
  readDataSubset?: string;
  smokeTest?: SmokeTest;
  signal: AbortSignal;
  actor: string;
  reason?: string;
  note(message: string): void;
  defer(fn: () => Promise<void>): void;
  onUpdate?(record: OperationRecord, step?: StepRecord): void | Promise<void>;
  onRecordError?(error: unknown): void;
}

/**
 * Which `n/t` subset this drill reads: `p%` rotates through t = round(100 / p) groups, continuing after
 * the subset the newest drill that read data recorded; `n/t` is used as given.
 */
export function nextSubset(spec: string, previous: OperationRecord[]): { n: number; t: number } {
  const fixed = /^(\d+)\/(\d+)$/.exec(spec);
  if (fixed) {
    const n = Number(fixed[1]);
    const t = Number(fixed[2]);
    if (t < 1 || n < 1 || n > t)
      throw new LifeboatError('USAGE', `--read-data-subset ${spec}: n must be between 1 and t`, {
        hint: 'e.g. 3/10, or 10% to rotate',
      });
    return { n, t };
  }
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(spec);
  if (!pct || Number(pct[1]) <= 0 || Number(pct[1]) > 100)
    throw new LifeboatError('USAGE', `--read-data-subset "${spec}" is neither p% (0-100] nor n/t`, {
      hint: 'e.g. 10% (all data read within ten drills) or 3/10',
    });
  const t = Math.max(1, Math.round(100 / Number(pct[1])));
  for (const d of previous) {
    const s = d.steps.find((x) => x.name === 'read-data');
    if (!s?.summary || s.summary.subsetCount !== t || typeof s.summary.subsetIndex !== 'number') continue;
    if (s.status === 'not-run' || s.status === 'pending' || s.status === 'skipped') continue;
    return { n: (s.summary.subsetIndex % t) + 1, t };
  }
  return { n: 1, t };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the drill that made a scratch target is gone: its record is finished; or it is still
 * `running` but was killed (its process is gone on this host, or it started longer ago than twice the
 * total budget elsewhere). A drill with no record at all is gone too.
 */
export async function abandonedCheck(
  records: Repository,
  totalBudgetMs: number,
): Promise<(id: string) => Promise<boolean>> {
  const drills = new Map((await listDrills(records)).map((d) => [d.id, d]));
  return async (id) => {
    const d = drills.get(id);
    if (!d || d.status !== 'running') return true;
    const pid = d.settings?.pid;
    if (d.host === hostname() && typeof pid === 'number') return !alive(pid);
    return Date.now() - Date.parse(d.startedAt) > 2 * totalBudgetMs;
  };
}

async function removeLeftovers(
  options: DrillOptions,
  ctx: LayerDrillContext,
  drill: LayerDrill,
): Promise<string[]> {
  const leftovers = await drill.cleanupLeftovers(ctx).catch((e: unknown) => {
    options.note(`lifeboat: could not remove the scratch targets of earlier drills: ${(e as Error).message}`);
    return [] as string[];
  });
  for (const l of leftovers) options.note(`lifeboat: removed ${l}, left by an interrupted drill`);
  return leftovers;
}

/**
 * The step of a layer kept outside the repository (VAULT_LAYERS): there is no snapshot, so the drill is
 * opened first and `pick`s its restore point (for secrets: the namespace manifests in Key Vault); the
 * step records what it picked in its summary and when it was written as `snapshotTime`, and no snapshot.
 * A pick that fails (no vault access, a damaged manifest) is the step's failure, not the drill's.
 */
async function vaultLayerStep(
  options: DrillOptions,
  ctx: LayerDrillContext,
  layer: DrillLayer,
  required: boolean,
  open: () => Promise<LayerDrill>,
): Promise<StepDefinition> {
  let drill: LayerDrill | undefined;
  let point: RestorePoint | undefined;
  let pickError: unknown;
  try {
    drill = await open();
    if (!drill.pick) throw new Error(`the ${layer} drill cannot pick a restore point`);
    point = await drill.pick(ctx);
  } catch (e) {
    pickError = e;
  }
  return {
    name: layer,
    layer: LAYER_TYPE[layer],
    enabled: point !== undefined || pickError !== undefined || required,
    budgetMs: options.budgets[layer],
    onFailure: 'continue',
    async run(signal, step) {
      if (pickError !== undefined) throw pickError;
      if (!drill || !point)
        throw new LifeboatError('NOT_FOUND', `no ${layer} backup in Key Vault to drill`, {
          hint: `take one first: \`lifeboat ${layer} backup\` (see docs/operations.md)`,
        });
      if (point.time) step.snapshotTime = point.time;
      const leftovers = await removeLeftovers(options, ctx, drill);
      const result = await drill.run({ ...ctx, signal }, undefined, point);
      for (const w of result.warnings ?? []) options.note(`lifeboat: ${layer}: ${w}`);
      return {
        status: result.warnings?.length ? 'warning' : 'success',
        ...(point.time ? { snapshotTime: point.time } : {}),
        summary: {
          ...point.summary,
          ...result.summary,
          ...(leftovers.length ? { leftoversRemoved: leftovers.length } : {}),
          ...(result.warnings?.length ? { warnings: result.warnings.length } : {}),
        },
      };
    },
  };
}

export async function runDrill(options: DrillOptions): Promise<OperationRecord> {
  const previous = await listDrills(options.records);
  const id = newOperationId();
  const subset = options.readDataSubset ? nextSubset(options.readDataSubset, previous) : undefined;
  const isAbandoned = await abandonedCheck(options.records, options.budgets.total);
  const ctx: LayerDrillContext = {
    repo: options.repo,
    drillId: id,
    signal: options.signal,
    note: options.note,
    defer: options.defer,
    isAbandoned,
  };

  const steps: StepDefinition[] = [];
  steps.push({
    name: 'read-data',
    enabled: subset !== undefined,
    onFailure: 'continue',
    async run() {
      const { n, t } = subset!;
      const report = await checkRepository(options.repo, { readData: true, readDataSubset: `${n}/${t}` });
      const summary = {
        subset: `${n}/${t}`,
        subsetIndex: n,
        subsetCount: t,
        packs: report.packs,
        packsRead: report.packsRead,
        blobsRead: report.blobsRead,
        damagedPacks: report.damagedPacks.length,
        damagedSnapshots: report.damagedSnapshots.length,
      };
      if (report.ok) return { summary };
      return {
        status: 'failure',
        summary,
        error: {
          code: 'INTEGRITY',
          message: `check --read-data-subset ${n}/${t} found damage: ${report.errors[0]}${report.errors.length > 1 ? ` (and ${report.errors.length - 1} more)` : ''}`,
          hint: report.next[0] ?? 'run `lifeboat check --read-data` for the whole report',
        },
      };
    },
  });

  for (const { layer, required, open, skipReason } of options.layers) {
    if (skipReason) {
      steps.push({
        name: layer,
        layer: LAYER_TYPE[layer],
        enabled: false,
        skipReason,
        onFailure: 'continue',
        run: () => Promise.reject(new Error(`${layer} is not drilled: ${skipReason}`)),
      });
      continue;
    }
    if (VAULT_LAYERS.has(layer)) {
      steps.push(await vaultLayerStep(options, ctx, layer, required, open));
      continue;
    }
    const snapshot = await newestBackup(options.repo, layer);
    steps.push({
      name: layer,
      layer: LAYER_TYPE[layer],
      // With `--component all`, a layer without any backup is not drilled (and says so).
      enabled: snapshot !== undefined || required,
      budgetMs: options.budgets[layer],
      onFailure: 'continue',
      async run(signal, step) {
        if (!snapshot)
          throw new LifeboatError('NOT_FOUND', `no ${LAYER_TYPE[layer]} backup in the repository to drill`, {
            hint: `take one first (see docs/operations.md); \`lifeboat snapshots --type ${LAYER_TYPE[layer]}\` lists them`,
          });
        step.snapshot = snapshot.id;
        step.snapshotTime = snapshot.time;
        const drill = await open();
        const leftovers = await removeLeftovers(options, ctx, drill);
        const result = await drill.run({ ...ctx, signal }, snapshot);
        for (const w of result.warnings ?? []) options.note(`lifeboat: ${layer}: ${w}`);
        return {
          status: result.warnings?.length ? 'warning' : 'success',
          snapshot: snapshot.id,
          snapshotTime: snapshot.time,
          summary: {
            ...result.summary,
            ...(leftovers.length ? { leftoversRemoved: leftovers.length } : {}),
            ...(result.warnings?.length ? { warnings: result.warnings.length } : {}),
          },
        };
      },
    });
  }

  if (options.smokeTest) {
    const test = options.smokeTest;
    steps.push({
      name: 'smoke-test',
      onFailure: 'continue',
      async run(signal) {
        const r = await runSmokeTest(test, signal);
        return { summary: smokeSummary(r) };
      },
    });
  }

  return runOperation(steps, {
    records: options.records,
    kind: 'drill',
    id,
    reason: options.reason,
    budget: 'mark',
    budgetMs: options.budgets.total,
    signal: options.signal,
    actor: options.actor,
    settings: {
      layers: options.layers.map((l) => l.layer),
      readDataSubset: options.readDataSubset ?? null,
      budgets: options.budgets,
      smokeTest: options.smokeTest?.url ?? null,
      pid: process.pid,
    },
    onUpdate: options.onUpdate,
    onRecordError: options.onRecordError,
  });
}

/** Whether a drill found damage (exit 3) rather than only failing (exit 1). */
export function drillFoundDamage(record: OperationRecord): boolean {
  return record.steps.some((s) => s.error?.code === 'INTEGRITY');
}

export function drillFailed(record: OperationRecord): boolean {
  return record.status !== 'success' && record.status !== 'warning';
}
