/**
 * `lifeboat validate`: fast checks of what exists, per layer (the guide's backup-validation.sh), run by
 * one registry over small per-layer validators (Velero's AppliesTo/Execute pattern: each validator names
 * the snapshot type it applies to; src/sources/<layer>/validate.ts).
 *
 * For the newest backup of each layer, whatever the layer:
 * - **age**: younger than the layer's max age (`validate.max-age` in lifeboat.yaml, else `--max-age`);
 * - **commit**: every blob the snapshot references is in the index and its pack exists (a listing, no
 *   pack is read), and the backup was complete;
 * - **retention**: the number of backups vs what the configured keep policy keeps — far more than it
 *   keeps means retention is not running (a warning);
 * then the layer's own checks (metadata, the cluster's VolumeSnapshots, the Key Vault's digests, …).
 * With `readBack`, the newest snapshot is also read back in full (every blob authenticated and re-hashed):
 * what integrity checks and drills use; damage found that way is status `damaged` (exit 3).
 *
 * The core stays free of MongoDB and Kubernetes: systems outside the repository (a cluster, a vault) are
 * reached through `ValidationPeers`, which the command opens on first use, or says why it cannot.
 */
import { isLifeboatError } from '../core/errors.ts';
import { applyPolicy, isEmptyPolicy, type RetentionPolicy } from '../core/repository/forget.ts';
import type { Snapshot, SnapshotType } from '../core/repository/model.ts';
import type { Repository } from '../core/repository/repository.ts';
import type { KubeClient } from '../sources/kubernetes/client.ts';
import type { SecretsVault } from '../sources/secrets/vault.ts';
import { clusterStateValidator, pvcValidator } from '../sources/kubernetes/validate.ts';
import { filesValidator } from '../sources/files/validate.ts';
import { mongodbValidator } from '../sources/mongodb/validate.ts';
import { secretsValidator } from '../sources/secrets/validate.ts';
import { terraformValidator } from '../sources/terraform/validate.ts';
import { VALIDATION_LAYERS, validationLayer } from './validate-layers.ts';

export type LayerStatus = 'ok' | 'warning' | 'stale' | 'missing' | 'failed' | 'damaged';

/** What a check looked at: `age` makes a layer stale, `read-back` damaged, any other failure failed. */
export type FindingCheck =
  | 'age'
  | 'commit'
  | 'metadata'
  | 'retention'
  | 'access'
  | 'cluster'
  | 'vault'
  | 'state'
  | 'presence'
  | 'copy'
  | 'read-back';

export interface Finding {
  level: 'warning' | 'failure';
  check: FindingCheck;
  message: string;
  /**
   * A warning that still makes the run exit 1 (Terraform: a state rolled back, replaced, or locked for
   * hours — the backup is sound, what it holds needs someone now; docs/terraform.md).
   */
  alert?: boolean;
}

/** A system a validator needs is not reachable (no kubeconfig, no vault given, refused): a warning. */
export class NoAccess extends Error {}

/** Systems outside the repository; each is opened on first use and throws NoAccess when it cannot be. */
export interface ValidationPeers {
  kube(): Promise<KubeClient>;
  /** undefined when no vault is configured at all. */
  vault(): Promise<SecretsVault | undefined>;
}

export interface LayerContext {
  repo: Repository;
  /** The newest backup of the layer; undefined when the layer lives outside the repository (Key Vault). */
  snapshot?: Snapshot;
  /** Every backup of the layer in the repository, oldest first. */
  history: Snapshot[];
  peers: ValidationPeers;
  signal: AbortSignal;
  warn(check: FindingCheck, message: string, alert?: boolean): void;
  fail(check: FindingCheck, message: string): void;
  /** One line of what was seen (`12 collections, 3400 documents`), shown when nothing was found. */
  note(text: string): void;
}

export interface LayerValidator {
  /** The layer's name as operators say it: `pvc` for `pvc-snapshots`. */
  layer: string;
  /** The snapshot type it applies to. */
  appliesTo: SnapshotType;
  /** Whether the layer exists outside the repository even with no snapshot of it (secrets: a vault). */
  outside?(peers: ValidationPeers): Promise<boolean>;
  /** What a missing layer's message adds (where else its backup could have been found). */
  missingHint?: string;
  validate(ctx: LayerContext): Promise<void>;
}

/** The registry: one validator per snapshot type, in the guide's pipeline order. */
export const VALIDATORS: LayerValidator[] = [
  mongodbValidator,
  pvcValidator,
  clusterStateValidator,
  secretsValidator,
  terraformValidator,
  filesValidator,
];

// The CLI reads the layers from validate-layers.ts without loading the validators: the two must agree.
const listed = (l: readonly { layer: string; appliesTo: string }[]) =>
  l.map((v) => `${v.layer}:${v.appliesTo}`).join(' ');
if (listed(VALIDATORS) !== listed(VALIDATION_LAYERS))
  throw new Error(
    `validate-layers.ts lists ${listed(VALIDATION_LAYERS)}, the validators are ${listed(VALIDATORS)}`,
  );

/** `pvc` or `pvc-snapshots` → the validator; undefined for an unknown name. */
export function validatorFor(name: string): LayerValidator | undefined {
  const layer = validationLayer(name)?.layer;
  return VALIDATORS.find((v) => v.layer === layer);
}

export interface ReadBackProgress {
  update(done: number): void;
  finish(): void;
}

export interface ValidateOptions {
  repo: Repository;
  peers: ValidationPeers;
  signal: AbortSignal;
  /** Layers asked for by name; undefined = every layer present (with `requireAll`, every layer). */
  only?: LayerValidator[];
  requireAll?: boolean;
  maxAgeMs(type: SnapshotType): number;
  /** The keep policy per type, with where it came from (`mongodb backup`, `forget`); none = no check. */
  policy(type: SnapshotType): { policy: RetentionPolicy; from: string } | undefined;
  readBack?: boolean;
  onReadBack?(type: SnapshotType, totalBytes: number): ReadBackProgress;
  now?: Date;
  /**
   * Check the copies to other locations (`lifeboat copy`, from the `copy` records this repository
   * holds as their source): the newest copy to each target succeeded and is younger than `maxAgeMs`;
   * `expected` names a target that must have one (copy.to in lifeboat.yaml).
   */
  copies?: { maxAgeMs: number; expected?: string };
}

export interface LayerResult {
  layer: string;
  type: SnapshotType | 'unknown' | 'copy';
  status: LayerStatus;
  snapshot?: string;
  timestamp?: string;
  ageHours?: number;
  maxAgeHours?: number;
  /** Backups of the layer in the repository. */
  snapshots: number;
  items?: number;
  /** Bytes read back (read-back only). */
  bytes?: number;
  /** The first failure (or the first warning): what the summary line shows. */
  problem?: string;
  findings: Finding[];
  /** Warning messages (also on stderr). */
  warnings: string[];
  detail?: string;
}

export interface ValidationReport {
  ok: boolean;
  /** One line: `all 3 layers ok` or `failed: pvc (failed), mongodb (stale)`. */
  summary: string;
  /** Layers that made the run fail. */
  failing: string[];
  readBack: boolean;
  counts: Record<LayerStatus, number>;
  results: LayerResult[];
}

const hoursOf = (ms: number) => Math.round((ms / 3600_000) * 10) / 10;

function statusOf(findings: Finding[]): LayerStatus {
  const failures = findings.filter((f) => f.level === 'failure');
  if (failures.some((f) => f.check === 'read-back')) return 'damaged';
  if (failures.some((f) => f.check !== 'age')) return 'failed';
  if (failures.length) return 'stale';
  return findings.length ? 'warning' : 'ok';
}

/** Every blob the snapshot references is indexed and its pack is in the listing. */
async function commitFindings(repo: Repository, snap: Snapshot, packs: Set<string>): Promise<Finding[]> {
  const out: Finding[] = [];
  const fail = (message: string) => out.push({ level: 'failure', check: 'commit', message });
  if (snap.summary.items !== snap.items.length)
    fail(`the snapshot lists ${snap.items.length} items, its summary counted ${snap.summary.items}`);
  if (snap.meta.incomplete)
    out.push({
      level: 'warning',
      check: 'commit',
      message: `the backup was incomplete (${String(snap.meta.errorCount ?? '?')} read errors)`,
    });
  const index = await repo.loadIndex();
  let missingBlobs = 0;
  const missingPacks = new Set<string>();
  let firstItem = '';
  for (const item of snap.items) {
    const ids: string[] = [...(item.chunkLists ?? [])];
    try {
      for await (const id of repo.chunkIds(item)) ids.push(id);
    } catch (e) {
      if (!isLifeboatError(e, 'INTEGRITY')) throw e;
      fail(`item ${item.name}: ${(e as Error).message}`);
      continue;
    }
    for (const id of ids) {
      const entry = index.get(id);
      if (!entry) {
        missingBlobs++;
        firstItem ||= item.name;
      } else if (!packs.has(entry.pack)) {
        missingPacks.add(entry.pack);
        firstItem ||= item.name;
      }
    }
  }
  if (missingBlobs)
    fail(
      `${missingBlobs} blob(s) it references are not in the index (first in item ${firstItem})${repo.damagedIndexFiles.length ? '; an index file is damaged: run `lifeboat repair index`' : ''}`,
    );
  if (missingPacks.size)
    fail(
      `pack(s) ${[...missingPacks]
        .slice(0, 3)
        .map((p) => p.slice(0, 12))
        .join(
          ', ',
        )}${missingPacks.size > 3 ? ` and ${missingPacks.size - 3} more` : ''} missing (first needed by item ${firstItem})`,
    );
  return out;
}

function describePolicy(p: RetentionPolicy): string {
  const parts: string[] = [];
  if (p.last) parts.push(`keep-last ${p.last}`);
  for (const k of ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const)
    if (p[k]) parts.push(`keep-${k} ${p[k]}`);
  if (p.within) parts.push(`keep-within ${p.within}`);
  if (p.retentionDays !== undefined) parts.push(`retention-days ${p.retentionDays}`);
  return parts.join(', ');
}

/**
 * Far more backups than the policy keeps: retention has not run for a while. "Far more" is more than
 * twice what it keeps and at least 2 over, so a backup whose retention was skipped once (another
 * process held the lock) is no finding.
 */
export function retentionFindings(
  history: Snapshot[],
  policy: RetentionPolicy,
  from: string,
  now: Date,
): Finding[] {
  if (!history.length || isEmptyPolicy(policy)) return [];
  const out: Finding[] = [];
  for (const g of applyPolicy(history, policy, now)) {
    const kept = g.decisions.filter((d) => d.keep).length;
    const excess = g.decisions.length - kept;
    if (excess >= 2 && excess > kept)
      out.push({
        level: 'warning',
        check: 'retention',
        message: `${g.decisions.length} ${history[0].type} snapshots where the keep policy (${describePolicy(policy)}, from ${from}) keeps ${kept}: retention is not running (backups with --no-retention, or no scheduled \`lifeboat forget\`)`,
      });
  }
  return out;
}

async function readBack(
  opts: ValidateOptions,
  snap: Snapshot,
): Promise<{ bytes: number; finding?: Finding }> {
  let bytes = 0;
  const bar = opts.onReadBack?.(
    snap.type,
    snap.items.reduce((n, i) => n + i.size, 0),
  );
  try {
    for (const item of snap.items)
      for await (const buf of opts.repo.readItem(item)) bar?.update((bytes += buf.length));
    return { bytes };
  } catch (e) {
    if (!isLifeboatError(e, 'INTEGRITY')) throw e;
    return { bytes, finding: { level: 'failure', check: 'read-back', message: (e as Error).message } };
  } finally {
    bar?.finish();
  }
}

export async function validateLayers(opts: ValidateOptions): Promise<ValidationReport> {
  const now = opts.now ?? new Date();
  const all = await opts.repo.listSnapshots();
  const results: LayerResult[] = [];
  // A snapshot object that cannot be read may have been the newest of its type: validating the one
  // before it and calling that "ok" would hide exactly what validation is for.
  for (const d of opts.repo.damagedSnapshots) {
    const message = `snapshot ${d.id.slice(0, 8)} cannot be read: ${d.damage}`;
    results.push({
      layer: 'unknown',
      type: 'unknown',
      status: 'damaged',
      snapshot: d.id,
      snapshots: 0,
      problem: message,
      findings: [{ level: 'failure', check: 'read-back', message }],
      warnings: [],
    });
  }
  let chosen = opts.only;
  if (!chosen) {
    chosen = [];
    for (const v of VALIDATORS)
      if (
        opts.requireAll ||
        all.some((s) => s.type === v.appliesTo) ||
        (v.outside && (await v.outside(opts.peers)))
      )
        chosen.push(v);
  }
  let packs: Set<string> | undefined;
  for (const v of chosen) {
    opts.signal.throwIfAborted();
    const history = all.filter((s) => s.type === v.appliesTo); // backups only: listSnapshots' default
    const snap = history.at(-1);
    const result: LayerResult = {
      layer: v.layer,
      type: v.appliesTo,
      status: 'ok',
      snapshots: history.length,
      findings: [],
      warnings: [],
    };
    results.push(result);
    const outside = !snap && v.outside ? await v.outside(opts.peers) : false;
    if (!snap && !outside) {
      result.status = 'missing';
      result.problem = `no ${v.appliesTo} snapshot in the repository${v.missingHint ? `, ${v.missingHint}` : ''}`;
      result.findings.push({ level: 'failure', check: 'presence', message: result.problem });
      continue;
    }
    const findings = result.findings;
    const notes: string[] = [];
    if (snap) {
      const ageMs = now.getTime() - Date.parse(snap.time);
      const maxAgeMs = opts.maxAgeMs(v.appliesTo);
      Object.assign(result, {
        snapshot: snap.id,
        timestamp: snap.timestamp,
        ageHours: hoursOf(ageMs),
        maxAgeHours: hoursOf(maxAgeMs),
        items: snap.items.length,
      });
      if (ageMs > maxAgeMs)
        findings.push({
          level: 'failure',
          check: 'age',
          message: `newest ${v.appliesTo} snapshot is ${(ageMs / 3600_000).toFixed(1)} h old (max age ${hoursOf(maxAgeMs)} h)`,
        });
      if (!packs) {
        packs = new Set();
        for await (const o of opts.repo.backend.list('data')) packs.add(o.name);
      }
      findings.push(...(await commitFindings(opts.repo, snap, packs)));
      const p = opts.policy(v.appliesTo);
      if (p) findings.push(...retentionFindings(history, p.policy, p.from, now));
    }
    const ctx: LayerContext = {
      repo: opts.repo,
      snapshot: snap,
      history,
      peers: opts.peers,
      signal: opts.signal,
      warn: (check, message, alert) =>
        findings.push({ level: 'warning', check, message, ...(alert ? { alert: true } : {}) }),
      fail: (check, message) => findings.push({ level: 'failure', check, message }),
      note: (text) => notes.push(text),
    };
    try {
      await v.validate(ctx);
    } catch (e) {
      if (!(e instanceof NoAccess)) throw e;
      findings.push({ level: 'warning', check: 'access', message: `not checked: ${e.message}` });
    }
    if (snap && opts.readBack) {
      const r = await readBack(opts, snap);
      result.bytes = r.bytes;
      if (r.finding) findings.push(r.finding);
    }
    if (notes.length) result.detail = notes.join('; ');
    result.status = statusOf(findings);
    result.warnings = findings.filter((f) => f.level === 'warning').map((f) => f.message);
    result.problem = (findings.find((f) => f.level === 'failure') ?? findings[0])?.message;
  }
  if (opts.copies) results.push(...(await copyResults(opts.repo, opts.copies, now)));
  const counts = { ok: 0, warning: 0, stale: 0, missing: 0, failed: 0, damaged: 0 };
  for (const r of results) counts[r.status]++;
  const failing = results.filter(
    (r) => !['ok', 'warning'].includes(r.status) || r.findings.some((f) => f.level === 'warning' && f.alert),
  );
  const ok = failing.length === 0;
  const summary = ok
    ? results.length === 0
      ? 'no snapshots to validate'
      : `${results.length} layer(s) validated: ${counts.ok} ok${counts.warning ? `, ${counts.warning} with warnings` : ''}`
    : `validation failed: ${failing.map((r) => `${r.layer} (${r.status}${r.problem ? `: ${r.problem}` : ''})`).join('; ')}`;
  return {
    ok,
    summary,
    failing: failing.map((r) => r.layer),
    readBack: opts.readBack === true,
    counts,
    results,
  };
}

/** What `copy` records in its source (src/cli/cmd_copy.ts `CopyRecord`), as far as validation reads it. */
interface CopyRecordView {
  status: 'success' | 'failure';
  finishedAt: string;
  source: { repository: string; location: string };
  target: { repository: string; location: string };
  copied: { target: string }[];
  error?: { message: string };
}

/** One result per copy target: its newest copy succeeded and is recent enough. */
async function copyResults(
  repo: Repository,
  copies: NonNullable<ValidateOptions['copies']>,
  now: Date,
): Promise<LayerResult[]> {
  const newest = new Map<string, CopyRecordView>();
  const lastSuccess = new Map<string, CopyRecordView>();
  for (const ref of await repo.records.list('copy')) {
    const body = await repo.records.get<CopyRecordView>(ref);
    if (body.source.repository !== repo.id) continue; // a record of copies *into* this repository
    newest.set(body.target.repository, body);
    if (body.status === 'success') lastSuccess.set(body.target.repository, body);
  }
  const results: LayerResult[] = [];
  for (const [target, record] of newest) {
    const findings: Finding[] = [];
    const good = lastSuccess.get(target);
    const ageMs = good ? now.getTime() - Date.parse(good.finishedAt) : Infinity;
    if (record.status === 'failure')
      findings.push({
        level: 'failure',
        check: 'copy',
        message: `the newest copy to ${record.target.location} failed: ${record.error?.message ?? 'unknown error'}`,
      });
    if (ageMs > copies.maxAgeMs)
      findings.push({
        level: 'failure',
        check: 'age',
        message: good
          ? `the newest successful copy to ${record.target.location} is ${(ageMs / 3600_000).toFixed(1)} h old (max age ${hoursOf(copies.maxAgeMs)} h)`
          : `no copy to ${record.target.location} has succeeded yet`,
      });
    results.push({
      layer: 'copy',
      type: 'copy',
      status: statusOf(findings),
      ...(good ? { timestamp: good.finishedAt, ageHours: hoursOf(ageMs) } : {}),
      maxAgeHours: hoursOf(copies.maxAgeMs),
      snapshots: good?.copied.length ?? 0,
      detail: `to ${record.target.location}`,
      problem: findings.find((f) => f.level === 'failure')?.message,
      findings,
      warnings: [],
    });
  }
  if (copies.expected && ![...newest.values()].some((r) => r.target.location === copies.expected)) {
    const message = `no copy to ${copies.expected} is recorded (copy.to is set): run \`lifeboat copy\``;
    results.push({
      layer: 'copy',
      type: 'copy',
      status: 'missing',
      snapshots: 0,
      detail: `to ${copies.expected}`,
      problem: message,
      findings: [{ level: 'failure', check: 'presence', message }],
      warnings: [],
    });
  }
  return results;
}
