/**
 * The daily pipeline's stage list: `pipeline.stages` in lifeboat.yaml (a structured setting, validated
 * against the schema below by the config check), or the default list — the guide's stages in its order,
 * plus retention after the backups.
 *
 * This module is a leaf (no command imports): config-sections.ts imports it while the command table is
 * still being built.
 */
import { LifeboatError } from '../core/errors.ts';
import type { SnapshotType } from '../core/repository/model.ts';
import type { ConfigSetting } from '../cli/config-sections.ts';

/** Why a pipeline runs (recorded, and in its event). */
export const PIPELINE_REASONS = ['manual', 'schedule', 'event'] as const;

/** `30m`, `1h30m`, `90s`, `500ms`. */
export const BUDGET_PATTERN = '^(?=\\d)(\\d+h)?(\\d+m(?!s))?(\\d+s)?(\\d+ms)?$';

export const PIPELINE_STAGES_SETTING: ConfigSetting = {
  path: ['pipeline', 'stages'],
  schema: {
    description:
      'the stages of `lifeboat pipeline run`, in order (docs/operations.md, "Daily pipeline"); without it the default list runs',
    type: 'array',
    items: {
      type: 'object',
      required: ['name'],
      additionalProperties: false,
      properties: {
        name: {
          type: 'string',
          pattern: '^[a-z][a-z0-9-]{0,31}$',
          description:
            'stage name: mongodb, pvc, cluster-state, secrets, terraform, retention, validate, notify, or your own',
        },
        command: {
          type: 'string',
          pattern: '^[a-z][a-z0-9-]*( [a-z][a-z0-9-]*)*$',
          description: 'the lifeboat command the stage runs, e.g. "mongodb backup" (defaults from the name)',
        },
        enabled: { type: 'boolean', description: 'false: recorded as skipped (default true)' },
        options: {
          type: 'object',
          description: "the command's options, as flags without -- (`ns-include: ['rocketchat.*']`)",
          additionalProperties: {
            type: ['string', 'number', 'boolean', 'array'],
            items: { type: ['string', 'number'] },
          },
        },
        args: {
          type: 'array',
          items: { type: 'string' },
          description: 'positional arguments of the command (e.g. the paths of `files backup`)',
        },
        budget: {
          type: 'string',
          pattern: BUDGET_PATTERN,
          description: 'time budget (30m, 1h30m, 90s); the stage is stopped when it runs out',
        },
        'on-failure': {
          enum: ['stop', 'continue'],
          description: 'stop: a failure ends the run; continue (default): it only makes the run partial',
        },
      },
    },
  },
};

export interface StageConfig {
  name: string;
  command?: string;
  enabled?: boolean;
  options?: Record<string, unknown>;
  args?: string[];
  budget?: string;
  'on-failure'?: 'stop' | 'continue';
}

/** A stage as the pipeline runs it: defaults filled in. */
export interface StageSpec {
  name: string;
  /** Command words; empty for the built-in notify stage. */
  command: string[];
  layer?: SnapshotType;
  enabled: boolean;
  options: Record<string, unknown>;
  args: string[];
  budget: string;
  budgetMs: number;
  onFailure: 'stop' | 'continue';
  /** Where it came from: the default list, or `pipeline.stages[i]` (a configured stage never skips itself). */
  source: 'default' | string;
}

interface KnownStage {
  command: string;
  layer?: SnapshotType;
  budget: string;
}

/** The default stages, in order, with the budgets used when none is configured. */
export const DEFAULT_STAGES: Record<string, KnownStage> = {
  mongodb: { command: 'mongodb backup', layer: 'mongodb', budget: '60m' },
  pvc: { command: 'pvc snapshot', layer: 'pvc-snapshots', budget: '20m' },
  'cluster-state': { command: 'cluster-state backup', layer: 'cluster-state', budget: '15m' },
  secrets: { command: 'secrets backup', layer: 'secrets', budget: '15m' },
  terraform: { command: 'terraform backup', layer: 'terraform', budget: '10m' },
  // The second location (docs/copy.md): after the backups, so it copies what they just wrote.
  copy: { command: 'copy', budget: '60m' },
  retention: { command: 'forget', budget: '30m' },
  validate: { command: 'validate', budget: '60m' },
  notify: { command: '', budget: '5m' },
};

/** The snapshot type a command writes, for stages of your own (`files backup` → files). */
const COMMAND_LAYERS: Record<string, SnapshotType> = {
  'files backup': 'files',
  'mongodb backup': 'mongodb',
  'pvc snapshot': 'pvc-snapshots',
  'cluster-state backup': 'cluster-state',
  'secrets backup': 'secrets',
  'terraform backup': 'terraform',
};

export function parseBudget(s: string, where: string): number {
  const m = new RegExp(BUDGET_PATTERN).exec(s);
  if (!m || !s)
    throw new LifeboatError('CONFIG', `${where}: budget "${s}" is not a duration`, {
      hint: 'write it as 30m, 1h30m, 90s or 500ms',
    });
  const n = (x: string | undefined) => (x ? parseInt(x, 10) : 0);
  return n(m[1]) * 3600_000 + n(m[2]) * 60_000 + n(m[3]) * 1000 + n(m[4]);
}

/**
 * The stages to run: `pipeline.stages` (each entry filled in from the default stage of its name), or
 * the default list; then `only` (--stages) picks some of them, in pipeline order.
 */
export function planStages(pipelineSection: Record<string, unknown>, only: string[]): StageSpec[] {
  const configured = pipelineSection.stages as StageConfig[] | undefined;
  const entries: { c: StageConfig; source: string }[] = configured
    ? configured.map((c, i) => ({ c, source: `pipeline.stages[${i}]` }))
    : Object.keys(DEFAULT_STAGES).map((name) => ({ c: { name }, source: 'default' }));
  const seen = new Set<string>();
  const stages = entries.map(({ c, source }) => {
    if (seen.has(c.name))
      throw new LifeboatError('CONFIG', `${source}.name: stage "${c.name}" is defined twice`, {
        hint: 'give each stage its own name',
      });
    seen.add(c.name);
    const known = DEFAULT_STAGES[c.name];
    const command = c.command ?? known?.command;
    if (command === undefined)
      throw new LifeboatError('CONFIG', `${source}: stage "${c.name}" needs a command`, {
        hint: `add \`command: "files backup"\` (or the command it runs); the built-in names are ${Object.keys(DEFAULT_STAGES).join(', ')}`,
      });
    const budget = c.budget ?? known?.budget ?? '30m';
    return {
      name: c.name,
      command: command ? command.split(' ') : [],
      layer: known && c.command === undefined ? known.layer : COMMAND_LAYERS[command],
      enabled: c.enabled ?? true,
      options: c.options ?? {},
      args: c.args ?? [],
      budget,
      budgetMs: parseBudget(budget, `${source}.budget`),
      onFailure: c['on-failure'] ?? 'continue',
      source,
    } satisfies StageSpec;
  });
  if (!only.length) return stages;
  for (const name of only)
    if (!seen.has(name))
      throw new LifeboatError('USAGE', `--stages: no stage "${name}"`, {
        hint: `the stages are ${stages.map((s) => s.name).join(', ')}`,
      });
  return stages
    .filter((s) => only.includes(s.name))
    .map((s) => (s.source === 'default' ? { ...s, source: '--stages' } : s));
}
