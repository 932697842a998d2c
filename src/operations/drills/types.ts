/** What every layer's restore drill (drills/<layer>.ts) offers the drill runner (drill.ts). */
import type { Snapshot } from '../../core/repository/model.ts';
import type { Repository } from '../../core/repository/repository.ts';
import type { DrillLayer } from '../drill-records.ts';

export interface LayerDrillContext {
  /** The repository the restore reads from (cancelled by the drill's signal). */
  repo: Repository;
  /** The drill's id: part of every scratch target's name or label, so leftovers can be found. */
  drillId: string;
  signal: AbortSignal;
  note(message: string): void;
  /**
   * Registers a cleanup that must run even if the drill is interrupted before the step's own `finally`
   * is reached (the command's defer list); it is run at most once.
   */
  defer(fn: () => Promise<void>): void;
  /** Whether the drill that made a scratch target is gone (finished, failed, or killed). */
  isAbandoned(drillId: string): Promise<boolean>;
}

export interface LayerDrillResult {
  summary: Record<string, string | number | boolean>;
  /** Findings that do not fail the drill (e.g. a PVC that binds only with a consumer). */
  warnings?: string[];
}

/**
 * What a layer kept outside the repository (the secrets layer, in Key Vault) drills instead of a
 * snapshot: its `summary` (what it is: namespaces, counts — never a value) goes into the step's summary,
 * its `time` (ISO, when it was last written) is the step's `snapshotTime`.
 */
export interface RestorePoint {
  summary: Record<string, string | number | boolean>;
  time?: string;
}

export interface LayerDrill {
  layer: DrillLayer;
  /**
   * `vault`: the layer's backups are not in the repository; the runner asks `pick` for the restore point
   * instead of looking for a snapshot, and `run` gets it in place of one.
   */
  source?: 'vault';
  /** The restore point to drill (source `vault`), or undefined when there is none. */
  pick?(ctx: LayerDrillContext): Promise<RestorePoint | undefined>;
  /** Removes scratch targets that earlier, killed drills left; returns what it removed. */
  cleanupLeftovers(ctx: LayerDrillContext): Promise<string[]>;
  /**
   * Restores `snapshot` (or, source `vault`, the picked restore point) into a scratch target, verifies
   * it, and removes the scratch target again.
   */
  run(
    ctx: LayerDrillContext,
    snapshot: Snapshot | undefined,
    point?: RestorePoint,
  ): Promise<LayerDrillResult>;
  /** Closes connections. */
  close(): Promise<void>;
}

/** Runs `fn` once, however many times it is called (the step's finally and the command's defer). */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

/** Drill ids in scratch names: `20261202-041331-abc123` (as newOperationId makes them). */
export const DRILL_ID_RE = /^\d{8}-\d{6}-[0-9a-f]{6}$/;
