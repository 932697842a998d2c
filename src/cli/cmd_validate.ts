/**
 * `lifeboat validate`: the guide's backup-validation step. For each snapshot type (or one), the newest
 * snapshot is read back in full — every blob authenticated, decompressed and re-hashed, every item's
 * SHA-256 compared — without writing anything, and its age is compared with --max-age so a silently
 * stopped schedule is caught too. Terraform captures are also compared with each other (serial
 * regressions, lineage changes, long-held locks: src/sources/terraform/checks.ts); a finding makes the
 * type's status `warning`.
 */
import { SNAPSHOT_TYPES, type SnapshotType } from '../core/repository/model.ts';
import { parseDuration } from '../core/repository/forget.ts';
import { isLifeboatError } from '../core/errors.ts';
import { str, usageError, type Command } from './command.ts';
import { EXIT_FAILED, EXIT_INTEGRITY, EXIT_OK } from './exit.ts';
import { formatBytes } from './output.ts';
import { openRepository } from './repo.ts';
import { terraformFindings } from '../sources/terraform/checks.ts';

interface TypeResult {
  type: string;
  status: 'ok' | 'missing' | 'stale' | 'damaged' | 'warning';
  snapshot?: string;
  timestamp?: string;
  ageHours?: number;
  items?: number;
  bytes?: number;
  problem?: string;
  /** Findings across captures (terraform: serial, lineage, locks); each is also a warning on stderr. */
  warnings?: string[];
}

interface ValidateResult {
  ok: boolean;
  results: TypeResult[];
}

export const validateCommand: Command<ValidateResult> = {
  path: ['validate'],
  summary: 'read back the newest snapshot of each type in full and verify it (nothing is written)',
  options: {
    type: { type: 'string', arg: 'TYPE', description: `only this type: ${SNAPSHOT_TYPES.join(', ')}` },
    'max-age': {
      type: 'string',
      arg: 'DURATION',
      default: '26h',
      description: 'a newest snapshot older than this is reported stale',
    },
    'require-all': {
      type: 'boolean',
      description: 'a type with no snapshot at all is a failure (default: only the types present)',
    },
  },
  help: [
    'Exit code 3 when a snapshot is damaged, 1 when one is missing or stale, or (terraform) when a',
    "workspace's serial went backwards, its lineage changed, or a lock was held over 2 h (docs/terraform.md).",
  ].join('\n'),
  async run(ctx, values) {
    const only = str(values.type);
    if (only && !SNAPSHOT_TYPES.includes(only as SnapshotType))
      throw usageError(`--type must be one of ${SNAPSHOT_TYPES.join(', ')}`);
    let maxAgeMs: number;
    try {
      const d = parseDuration(str(values['max-age'])!);
      maxAgeMs = ((d.y * 365 + d.m * 31 + d.d) * 24 + d.h) * 3600_000;
    } catch (e) {
      throw usageError(`--max-age: ${(e as Error).message}`);
    }
    const repo = await openRepository(ctx, { lock: 'shared' });
    const all = await repo.listSnapshots();
    // A snapshot object that cannot be read may have been the newest of its type: validating the one
    // before it and calling that "ok" would hide exactly what validation is for.
    const unreadable: TypeResult[] = repo.damagedSnapshots.map((d) => ({
      type: 'unknown',
      status: 'damaged',
      snapshot: d.id,
      problem: `snapshot ${d.id.slice(0, 8)} cannot be read: ${d.damage}`,
    }));
    const types = only
      ? [only]
      : values['require-all']
        ? [...SNAPSHOT_TYPES]
        : [...new Set(all.map((s) => s.type))];
    const results: TypeResult[] = [...unreadable];
    for (const type of types) {
      const snap = all.filter((s) => s.type === type).at(-1);
      if (!snap) {
        results.push({ type, status: 'missing', problem: `no ${type} snapshot in the repository` });
        continue;
      }
      const ageHours = (Date.now() - Date.parse(snap.time)) / 3600_000;
      const base = {
        type,
        snapshot: snap.id,
        timestamp: snap.timestamp,
        ageHours: Math.round(ageHours * 10) / 10,
        items: snap.items.length,
      };
      let bytes = 0;
      const bar = ctx.out.progress(
        `validate ${type}`,
        snap.items.reduce((n, i) => n + i.size, 0),
      );
      try {
        for (const item of snap.items)
          for await (const buf of repo.readItem(item)) bar.update((bytes += buf.length));
      } catch (e) {
        if (!isLifeboatError(e, 'INTEGRITY')) throw e;
        results.push({ ...base, bytes, status: 'damaged', problem: (e as Error).message });
        continue;
      } finally {
        bar.finish();
      }
      const stale = ageHours * 3600_000 > maxAgeMs;
      results.push({
        ...base,
        bytes,
        status: stale ? 'stale' : 'ok',
        problem: stale ? `newest ${type} snapshot is ${ageHours.toFixed(1)} h old` : undefined,
      });
    }
    const terraform = results.find((r) => r.type === 'terraform' && r.snapshot);
    if (terraform) {
      const warnings = terraformFindings(all).map((f) => f.message);
      for (const w of warnings) ctx.warn(w);
      if (warnings.length) {
        terraform.warnings = warnings;
        if (terraform.status === 'ok') {
          terraform.status = 'warning';
          terraform.problem = `${warnings.length} Terraform state finding(s), see the warnings`;
        }
      }
    }
    return { ok: results.every((r) => r.status === 'ok'), results };
  },
  exitCode: (r) =>
    r.results.some((x) => x.status === 'damaged') ? EXIT_INTEGRITY : r.ok ? EXIT_OK : EXIT_FAILED,
  human(r, out) {
    out.table(
      r.results.map((x) => [
        x.type,
        x.status,
        x.timestamp ?? '',
        x.ageHours !== undefined ? `${x.ageHours} h` : '',
        x.bytes !== undefined ? formatBytes(x.bytes) : '',
        x.problem ?? '',
      ]),
      ['TYPE', 'STATUS', 'NEWEST', 'AGE', 'VERIFIED', 'PROBLEM'],
    );
    if (r.results.length === 0) out.line('no snapshots to validate');
  },
  effect: 'verify',
  layer: 'repository',
  event: (r, values) => ({
    ...(typeof values.type === 'string' ? { layer: values.type } : {}),
    items: r.results.length,
    // Per type: its status and the snapshot verified (`status.mongodb: ok`, `snapshot.mongodb: …`).
    details: Object.fromEntries(
      r.results.flatMap((x) => [
        [`status.${x.type}`, x.status],
        ...(x.snapshot ? [[`snapshot.${x.type}`, x.snapshot]] : []),
      ]),
    ),
  }),
};
