/**
 * The shape of every CLI command (one file each, cmd_<area>_<verb>.ts, like restic's cmd_*.go).
 * A command declares its options; main.ts resolves them from flags, environment and the config file,
 * runs it, and prints its result as JSON (`--json`) or through its `human` renderer.
 */
import { LifeboatError } from '../core/errors.ts';
import type { EventBus, EventDetail, EventEffect } from '../core/events.ts';
import type { Logger } from '../core/log.ts';
import type { Repository } from '../core/repository/repository.ts';
import type { Output } from './output.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  description: string;
  multiple?: boolean;
  short?: string;
  /** Environment variable; defaults to LIFEBOAT_<AREA>_<NAME> (area omitted for single-word commands). */
  env?: string;
  /** Shown in help, applied when nothing else sets the option. */
  default?: string | boolean;
  /** Placeholder in help, e.g. "N" or "URI". */
  arg?: string;
  /**
   * Only as a typed flag, never from the environment or lifeboat.yaml: for overrides of a safety check
   * (`terraform restore --force`, `unlock --remove-all`), which a variable set once for another command
   * must never switch on silently.
   */
  flagOnly?: boolean;
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface GlobalOptions {
  repo: string;
  config?: string;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  keystore?: string;
  passwordFile?: string;
  keyFile?: string;
}

export interface CommandContext {
  globals: GlobalOptions;
  out: Output;
  log: Logger;
  env: NodeJS.ProcessEnv;
  /** Aborted on SIGINT/SIGTERM: long operations stop cleanly (and roll back where they promise to). */
  signal: AbortSignal;
  /**
   * Config-file section for an area (`mongodb`, `kubernetes`, …), for settings that are not flags. The
   * file is checked against the option tables (config-schema.ts): add a section read here to its tree, or
   * the check rejects it.
   */
  section(name: string): Record<string, unknown>;
  /** `area verb`, e.g. `files restore`. */
  command: string;
  /** Runs `fn` when the command ends, success or not, newest first (releases locks, closes storage). */
  defer(fn: () => Promise<void> | void): void;
  /** One warning line on stderr (also in the structured log); never on stdout, so --json stays clean. */
  warn(message: string): void;
  /** The whole config file (keys kebab-cased at the top level), for commands that run other commands. */
  config: Record<string, unknown>;
  configFile: string;
  /** Where this command's event goes (invoke.ts emits it; the pipeline emits one per stage as well). */
  events: EventBus;
  /** Set when the command runs as a pipeline stage or recovery phase: its events carry them. */
  runId?: string;
  stage?: string;
  /** The repository the command opened (repo.ts sets it), so sinks such as the audit log can use it. */
  repository?: Repository;
}

export interface Command<R = unknown> {
  /** e.g. ['mongodb', 'backup']. */
  path: string[];
  summary: string;
  /** Positional arguments for help, e.g. "SNAPSHOT --target DIR". */
  usage?: string;
  options: Record<string, OptionSpec>;
  /** Extra help text: examples and notes. */
  help?: string;
  run(ctx: CommandContext, values: OptionValues, positionals: string[]): Promise<R>;
  /** Human-readable rendering; without it the result is printed as indented key: value lines. */
  human?(result: R, out: Output): void;
  /** Exit code for a result (default 0); `check` uses 3 when it found damage. */
  exitCode?(result: R): number;
  /**
   * Whether the command changes or verifies something, and so emits one event (src/core/events.ts);
   * read-only commands (snapshots, show, stats) leave it out and emit nothing.
   */
  effect?: EventEffect;
  /** What the result adds to the event (layer, snapshot, bytes, outcome). */
  event?(result: R, values: OptionValues): EventDetail;
  /** The event's layer when the command failed before it had a result (e.g. `mongodb`). */
  layer?: string;
}

export function str(v: OptionValues[string]): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function list(v: OptionValues[string]): string[] {
  if (v === undefined || typeof v === 'boolean') return [];
  return (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).filter(Boolean);
}

export function int(v: OptionValues[string], name: string): number | undefined {
  if (v === undefined || typeof v === 'boolean') return undefined;
  const s = Array.isArray(v) ? v.at(-1)! : v;
  if (!/^-?\d+$/.test(s)) throw usageError(`--${name} must be a whole number, got "${s}"`);
  return Number(s);
}

export function usageError(message: string, hint?: string): LifeboatError {
  return new LifeboatError('USAGE', message, { hint: hint ?? 'see `lifeboat help`' });
}
