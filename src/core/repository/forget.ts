/**
 * Retention policy, restic's semantics (doc/060_forget.rst), as a pure function: no I/O, so `--dry-run`
 * and the tests see exactly what `forget` would do.
 *
 * - Snapshots are grouped (by type, host and paths) and each group is judged on its own.
 * - keep-last N keeps the N newest. Each keep-{hourly,daily,weekly,monthly,yearly} N keeps the newest
 *   snapshot of each of the N most recent calendar periods that have a snapshot (ISO weeks; UTC). If a
 *   rule still has count left when it reaches the oldest snapshot, that one is kept too.
 * - keep-within D keeps everything within D of the group's *newest* snapshot (not of now).
 * - Rules are OR-ed; reasons are reported per snapshot.
 * - The guide's --retention-days N keeps snapshots taken within N days of *now*, and always the newest
 *   one of each group, so a stalled backup schedule never empties the repository.
 * - Whatever the policy, the newest snapshot of each group that holds data is kept: a week of empty
 *   backups (a wrong filter, `--allow-empty`) never forgets the last real one.
 * - Whatever the policy, snapshots in `protect` are kept, with its reason (the newest restore point of
 *   each layer that a restore drill verified: "verified by drill <id>").
 */
import type { Snapshot } from './model.ts';

export interface RetentionPolicy {
  /** Counts: -1 means unlimited. */
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** Duration like `7d`, `2w`, `1y2m3d4h`. */
  within?: string;
  /** Days back from now. */
  retentionDays?: number;
}

export interface Decision {
  snapshot: Snapshot;
  keep: boolean;
  reasons: string[];
}

export interface GroupDecision {
  group: string;
  decisions: Decision[];
}

export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return (
    !p.last &&
    !p.hourly &&
    !p.daily &&
    !p.weekly &&
    !p.monthly &&
    !p.yearly &&
    !p.within &&
    p.retentionDays === undefined
  );
}

/** Parses `1y2m3d4h` (years, months, days, hours; also `w` for weeks). */
export function parseDuration(s: string): { y: number; m: number; d: number; h: number } {
  const re = /(\d+)([ymwdh])/g;
  const out = { y: 0, m: 0, d: 0, h: 0 };
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    const n = Number(m[1]);
    if (m[2] === 'w') out.d += 7 * n;
    else out[m[2] as 'y' | 'm' | 'd' | 'h'] += n;
    consumed += m[0].length;
  }
  if (consumed !== s.length || consumed === 0)
    throw new Error(`invalid duration "${s}" (use e.g. 7d, 2w, 1y6m, 12h)`);
  return out;
}

function subtract(t: Date, d: { y: number; m: number; d: number; h: number }): number {
  const r = new Date(t);
  r.setUTCFullYear(r.getUTCFullYear() - d.y, r.getUTCMonth() - d.m, r.getUTCDate() - d.d);
  r.setUTCHours(r.getUTCHours() - d.h);
  return r.getTime();
}

function isoWeek(t: Date): string {
  const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86400000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${week}`;
}

const BUCKETS: { rule: 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly'; key: (t: Date) => string }[] = [
  { rule: 'hourly', key: (t) => t.toISOString().slice(0, 13) },
  { rule: 'daily', key: (t) => t.toISOString().slice(0, 10) },
  { rule: 'weekly', key: isoWeek },
  { rule: 'monthly', key: (t) => t.toISOString().slice(0, 7) },
  { rule: 'yearly', key: (t) => t.toISOString().slice(0, 4) },
];

export function groupKey(s: Snapshot): string {
  return `${s.type} ${s.host} ${[...s.paths].sort().join(',')}`;
}

export function applyPolicy(
  snapshots: Snapshot[],
  policy: RetentionPolicy,
  now = new Date(),
  protect: ReadonlyMap<string, string> = new Map(),
): GroupDecision[] {
  const groups = new Map<string, Snapshot[]>();
  for (const s of snapshots) {
    const k = groupKey(s);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(s);
  }
  const within = policy.within ? parseDuration(policy.within) : undefined;
  const out: GroupDecision[] = [];
  for (const [group, list] of groups) {
    const sorted = [...list].sort((a, b) => b.time.localeCompare(a.time) || b.id.localeCompare(a.id));
    const counts = new Map(BUCKETS.map((b) => [b.rule, policy[b.rule] ?? 0]));
    const lastBucket = new Map<string, string>();
    const newest = new Date(sorted[0].time);
    const decisions = sorted.map((snapshot, nr): Decision => {
      const t = new Date(snapshot.time);
      const reasons: string[] = [];
      if (policy.last && (policy.last < 0 || nr < policy.last)) reasons.push(`last ${policy.last}`);
      for (const b of BUCKETS) {
        const left = counts.get(b.rule)!;
        if (left === 0) continue;
        const key = b.key(t);
        // restic also keeps the oldest snapshot while a rule has count left: the longest history.
        if (key !== lastBucket.get(b.rule) || nr === sorted.length - 1) {
          lastBucket.set(b.rule, key);
          if (left > 0) counts.set(b.rule, left - 1);
          reasons.push(`${b.rule} snapshot (${key})`);
        }
      }
      if (within && t.getTime() > subtract(newest, within))
        reasons.push(`within ${policy.within} of the newest`);
      if (policy.retentionDays !== undefined) {
        if (t.getTime() > now.getTime() - policy.retentionDays * 86400_000)
          reasons.push(`younger than ${policy.retentionDays} days`);
        else if (nr === 0) reasons.push('newest snapshot (always kept)');
      }
      const kept = protect.get(snapshot.id);
      if (kept) reasons.push(kept);
      return { snapshot, keep: reasons.length > 0, reasons };
    });
    const newestWithData = decisions.find((d) => !isEmptySnapshot(d.snapshot));
    if (newestWithData && !newestWithData.keep) {
      newestWithData.keep = true;
      newestWithData.reasons.push('newest snapshot with data (always kept)');
    }
    out.push({ group, decisions });
  }
  return out;
}

/** A snapshot of a backup that found nothing (committed with --allow-empty). */
export function isEmptySnapshot(s: Snapshot): boolean {
  return s.items.length === 0 || s.meta?.empty === true;
}
