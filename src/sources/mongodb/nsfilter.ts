/**
 * Namespace selection and renaming, as mongodump/mongorestore's --nsInclude/--nsExclude/--nsFrom/--nsTo:
 * patterns are `db.collection` with `*` matching any run of characters (including dots, so `rc.*`
 * matches every collection of `rc`). Renaming maps each `*` of the from-pattern, in order, onto the
 * `*`s of the to-pattern: `--ns-from 'rocketchat.*' --ns-to 'rocketchat_restored.*'`.
 */
import { LifeboatError } from '../../core/errors.ts';

/** Databases and collections that are server internals, never backed up or restored by default. */
export const SYSTEM_DATABASES = new Set(['admin', 'local', 'config']);

export function isSystemNamespace(db: string, collection: string): boolean {
  if (SYSTEM_DATABASES.has(db)) return true;
  // system.views is recreated from view metadata; system.buckets.* belong to time-series collections;
  // system.profile and system.js are server-managed.
  return collection.startsWith('system.');
}

/** The collection an atomic restore journals into, in the first target database (see restore.ts). */
export const RESTORE_JOURNAL = 'lifeboat_restore_journal';

/**
 * Collections an atomic restore creates beside the data: its journal, each shadow it loads
 * (`<coll>_lifeboat_shadow_<id>`), each replaced collection set aside (`<coll>_lifeboat_old_<id>`) and
 * the rename probe. Never backed up, never restored over.
 */
export function isLifeboatNamespace(collection: string): boolean {
  return collection === RESTORE_JOURNAL || /lifeboat_(shadow|old|probe)_[0-9a-f]{8}/.test(collection);
}

function toRegExp(pattern: string, capture: boolean): RegExp {
  const body = pattern
    .split('*')
    .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join(capture ? '(.*)' : '.*');
  return new RegExp(`^${body}$`, 's');
}

export function checkPattern(p: string, flag: string): void {
  if (!p.includes('.') && !p.endsWith('*')) {
    throw new LifeboatError('USAGE', `${flag} "${p}" is not a namespace pattern`, {
      hint: 'patterns look like db.collection, db.*, *.users or rocketchat.rocketchat_*',
    });
  }
}

export class NamespaceFilter {
  private readonly include: RegExp[];
  private readonly exclude: RegExp[];

  constructor(include: string[] = [], exclude: string[] = []) {
    for (const p of include) checkPattern(p, '--ns-include');
    for (const p of exclude) checkPattern(p, '--ns-exclude');
    // A bare database name in --ns-include means the whole database.
    this.include = include.map((p) => toRegExp(p, false));
    this.exclude = exclude.map((p) => toRegExp(p, false));
  }

  matches(ns: string): boolean {
    if (this.include.length && !this.include.some((r) => r.test(ns))) return false;
    return !this.exclude.some((r) => r.test(ns));
  }
}

export class NamespaceRenamer {
  private readonly rules: { from: RegExp; to: string[] }[] = [];

  constructor(from: string[] = [], to: string[] = []) {
    if (from.length !== to.length) {
      throw new LifeboatError(
        'USAGE',
        `--ns-from given ${from.length} times but --ns-to ${to.length} times`,
        {
          hint: 'give them in pairs: --ns-from "rocketchat.*" --ns-to "rocketchat_restored.*"',
        },
      );
    }
    for (let i = 0; i < from.length; i++) {
      checkPattern(from[i], '--ns-from');
      checkPattern(to[i], '--ns-to');
      const stars = (s: string) => s.split('*').length - 1;
      if (stars(from[i]) !== stars(to[i])) {
        throw new LifeboatError(
          'USAGE',
          `--ns-from "${from[i]}" and --ns-to "${to[i]}" have different numbers of *`,
          {
            hint: 'each * in --ns-from maps onto the * at the same position in --ns-to',
          },
        );
      }
      this.rules.push({ from: toRegExp(from[i], true), to: to[i].split('*') });
    }
  }

  /** The target namespace for a source one (first matching rule wins; unchanged when none matches). */
  rename(ns: string): string {
    for (const r of this.rules) {
      const m = r.from.exec(ns);
      if (!m) continue;
      let out = r.to[0];
      for (let i = 1; i < r.to.length; i++) out += m[i] + r.to[i];
      return out;
    }
    return ns;
  }
}

/** Splits `db.collection` at the first dot (collection names may contain dots, database names not). */
export function splitNs(ns: string): { db: string; collection: string } {
  const i = ns.indexOf('.');
  if (i <= 0 || i === ns.length - 1) {
    throw new LifeboatError('USAGE', `"${ns}" is not a db.collection namespace`, {
      hint: 'check --ns-to patterns',
    });
  }
  return { db: ns.slice(0, i), collection: ns.slice(i + 1) };
}
