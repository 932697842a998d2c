/**
 * Where a command's option values come from: flag > environment > lifeboat.yaml > default. main.ts uses
 * this for the command line; the pipeline uses it for each stage, with the stage's options from
 * `pipeline.stages[].options` in the place of flags, so a stage runs exactly as the command would.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { LifeboatError } from '../core/errors.ts';
import type { Command, OptionSpec, OptionValues } from './command.ts';
import { COMMANDS, GLOBAL_OPTIONS } from './commands.ts';
import { assertValidConfig, FALSE_WORDS, kebabCase, TRUE_WORDS } from './config-schema.ts';

export function envName(cmd: Command | undefined, name: string, spec: OptionSpec): string {
  if (spec.env) return spec.env;
  const area = cmd && cmd.path.length > 1 ? `${cmd.path[0]}_` : '';
  return `LIFEBOAT_${area}${name}`.toUpperCase().replace(/-/g, '_');
}

export function findCommand(words: string[]): { cmd?: Command; rest: string[] } {
  let best: Command | undefined;
  for (const c of COMMANDS) {
    if (c.path.every((w, i) => words[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return { cmd: best, rest: best ? words.slice(best.path.length) : words };
}

export function normalise(obj: unknown): Record<string, unknown> {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[kebabCase(k)] = v;
  return out;
}

export function loadConfig(file: string | undefined, explicit: boolean): Record<string, unknown> {
  if (!file || !existsSync(file)) {
    if (explicit)
      throw new LifeboatError('CONFIG', `config file ${file} does not exist`, {
        hint: 'check --config / LIFEBOAT_CONFIG',
      });
    return {};
  }
  let document: unknown;
  try {
    // Required here, not imported: the YAML parser is ~0.7 MiB of heap that a run without a config
    // file would keep, and every full collection of a backup marks it (docs/performance.md).
    const yaml = createRequire(import.meta.url)('yaml') as typeof Yaml;
    document = yaml.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new LifeboatError(
      'CONFIG',
      `config file ${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`,
      {
        hint: 'fix the file (see docs/configuration.md)',
      },
    );
  }
  // The whole file, whatever the command: a typo in a section this command does not read is still a typo.
  assertValidConfig(document, file);
  return normalise(document);
}

/** Config lookup: <area>.<verb>.<opt>, then <area>.<opt>, then top-level <opt>. */
function fromConfig(config: Record<string, unknown>, cmd: Command | undefined, name: string): unknown {
  const scopes: Record<string, unknown>[] = [];
  if (cmd) {
    let node: Record<string, unknown> = config;
    const chain: Record<string, unknown>[] = [];
    for (const w of cmd.path) {
      node = normalise(node[w]);
      chain.push(node);
    }
    scopes.push(...chain.reverse());
  }
  scopes.push(config);
  for (const s of scopes)
    if (s[name] !== undefined && (typeof s[name] !== 'object' || Array.isArray(s[name]))) return s[name];
  return undefined;
}

export function coerce(name: string, spec: OptionSpec, raw: unknown, source: string): OptionValues[string] {
  if (spec.type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    const s = String(raw).toLowerCase();
    if (TRUE_WORDS.includes(s)) return true;
    if (FALSE_WORDS.includes(s) || s === '') return false;
    throw new LifeboatError('CONFIG', `${source}: --${name} expects true or false, got "${raw}"`);
  }
  if (spec.multiple) return Array.isArray(raw) ? raw.map(String) : String(raw).split(',').filter(Boolean);
  return String(raw);
}

/**
 * Values for every option of `cmd` (and the global options). `flags` holds what was typed (or, for a
 * pipeline stage, what its definition sets); flag-only options are never taken from anywhere else.
 */
export function resolveOptions(
  cmd: Command,
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  config: Record<string, unknown>,
  configFile: string,
): OptionValues {
  const specs = { ...GLOBAL_OPTIONS, ...cmd.options };
  const values: OptionValues = {};
  for (const [name, spec] of Object.entries(specs)) {
    const flag = flags[name];
    if (flag !== undefined) {
      values[name] =
        spec.multiple && !Array.isArray(flag)
          ? [String(flag)]
          : typeof flag === 'number'
            ? String(flag)
            : (flag as OptionValues[string]);
      continue;
    }
    const e = spec.flagOnly ? undefined : env[envName(GLOBAL_OPTIONS[name] ? undefined : cmd, name, spec)];
    if (e !== undefined && e !== '') {
      values[name] = coerce(name, spec, e, `environment ${envName(cmd, name, spec)}`);
      continue;
    }
    const c = spec.flagOnly ? undefined : fromConfig(config, GLOBAL_OPTIONS[name] ? undefined : cmd, name);
    if (c !== undefined) {
      values[name] = coerce(name, spec, c, `config ${configFile}`);
      continue;
    }
    if (spec.default !== undefined)
      values[name] =
        spec.type === 'boolean'
          ? Boolean(spec.default)
          : spec.multiple
            ? [String(spec.default)]
            : String(spec.default);
  }
  return values;
}
