/**
 * What lifeboat.yaml may contain, derived from the option tables (COMMANDS and GLOBAL_OPTIONS) so that
 * the validator main.ts runs and the published JSON Schema (docs/lifeboat.schema.json) cannot disagree.
 *
 * The file is a tree of command-path sections: at the top level the global options, every option some
 * command declares, and one section per first command word (`mongodb:`, `forget:`, …); inside
 * `<area>:` the options of the commands under that area and one section per next word (`backup:`). A
 * typo must be an error: a misspelt `keep-last` silently runs with no retention.
 */
import { LifeboatError } from '../core/errors.ts';
import type { OptionSpec } from './command.ts';
import { COMMANDS, GLOBAL_OPTIONS } from './commands.ts';
import { CONFIG_SETTINGS } from './config-sections.ts';
import { createRequire } from 'node:module';
import type * as AjvModule from 'ajv';
import type { Ajv, ValidateFunction } from 'ajv';

/** The words a boolean option accepts as a string (environment variables, quoted YAML). */
export const TRUE_WORDS = ['true', 'yes', 'on', '1'];
export const FALSE_WORDS = ['false', 'no', 'off', '0'];
const BOOLEAN_WORDS: unknown[] = [...TRUE_WORDS, ...FALSE_WORDS];

/** Flags that only make sense on the command line: the file cannot choose itself, nor ask for help. */
const NOT_IN_CONFIG = new Set(['config', 'help']);

interface ConfigNode {
  /** Command words leading here: [] at the top level, ['mongodb', 'backup'] for `mongodb.backup`. */
  words: string[];
  options: Map<string, OptionSpec>;
  sections: Map<string, ConfigNode>;
  /** Structured settings (config-sections.ts) at this level, with their compiled validators. */
  settings: Map<string, { schema: Record<string, unknown>; readonly validate: ValidateFunction }>;
}

/** `keepLast` and `keep_last` mean `keep-last` (main.ts normalises the keys it reads with this too). */
export function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()).replace(/_/g, '-');
}

type ValueKind = 'boolean' | 'string' | 'list';

function kindOf(spec: OptionSpec): ValueKind {
  return spec.type === 'boolean' ? 'boolean' : spec.multiple ? 'list' : 'string';
}

function emptyNode(words: string[]): ConfigNode {
  return { words, options: new Map(), sections: new Map(), settings: new Map() };
}

function buildTree(): ConfigNode {
  const root = emptyNode([]);
  const add = (node: ConfigNode, name: string, spec: OptionSpec) => {
    const known = root.options.get(name);
    // One name, one type: a config value is checked without knowing which command will read it.
    if (known && kindOf(known) !== kindOf(spec))
      throw new Error(`option --${name} is declared as both ${kindOf(known)} and ${kindOf(spec)}`);
    if (!node.options.has(name)) node.options.set(name, spec);
  };
  for (const [name, spec] of Object.entries(GLOBAL_OPTIONS))
    if (!NOT_IN_CONFIG.has(name)) add(root, name, spec);
  for (const cmd of COMMANDS) {
    // A command's option is valid at `mongodb.backup`, at `mongodb` and at the top level: main.ts looks
    // it up in that order.
    const scopes = [root];
    for (const word of cmd.path) {
      const parent = scopes.at(-1)!;
      if (!parent.sections.has(word)) parent.sections.set(word, emptyNode([...parent.words, word]));
      scopes.push(parent.sections.get(word)!);
    }
    for (const [name, spec] of Object.entries(cmd.options))
      if (!spec.flagOnly) for (const scope of scopes) add(scope, name, spec);
  }
  // Required on first compile, not imported: most runs have no structured setting to check, and ajv is
  // ~0.9 MiB of heap every full collection would mark (docs/performance.md).
  let ajv: Ajv | undefined;
  const compile = (schema: object) => {
    ajv ??= new (createRequire(import.meta.url)('ajv') as typeof AjvModule).Ajv({
      allErrors: true,
      strict: false,
    });
    return ajv.compile(schema);
  };
  for (const setting of CONFIG_SETTINGS) {
    let node = root;
    for (const word of setting.path.slice(0, -1)) {
      if (!node.sections.has(word)) node.sections.set(word, emptyNode([...node.words, word]));
      node = node.sections.get(word)!;
    }
    // Compiled on first use: most commands run without a config file, and compiling every schema
    // took a fifth of the CLI's start-up.
    let compiled: ValidateFunction | undefined;
    node.settings.set(setting.path.at(-1)!, {
      schema: setting.schema,
      get validate() {
        return (compiled ??= compile(setting.schema));
      },
    });
  }
  return root;
}

let built: ConfigNode | undefined;
/** Built on first use, for the same reason the validators are compiled lazily. */
function tree(): ConfigNode {
  return (built ??= buildTree());
}

// ---- validation ----------------------------------------------------------------------------------------

export interface ConfigProblem {
  /** Dot path as written in the file, e.g. `mongodb.backup.retention-dayz`; '' for the document. */
  path: string;
  message: string;
  hint?: string;
}

/** Every problem in a parsed lifeboat.yaml, in file order; [] when it is valid. */
export function configProblems(document: unknown): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  checkSection(tree(), document, '', problems);
  return problems;
}

/** Throws a CONFIG error naming the first problem (all of them are in `details.problems`). */
export function assertValidConfig(document: unknown, file: string): void {
  const problems = configProblems(document);
  if (!problems.length) return;
  const [first] = problems;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  throw new LifeboatError(
    'CONFIG',
    `config ${file}: ${first.path ? `${first.path}: ` : ''}${first.message}${more}`,
    {
      hint: first.hint ?? 'see docs/configuration.md',
      details: { problems: problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)) },
    },
  );
}

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function checkSection(node: ConfigNode, value: unknown, at: string, problems: ConfigProblem[]): void {
  if (value === null) return; // `mongodb:` with every line below it commented out
  if (!isMap(value)) {
    problems.push({
      path: at,
      message: `expected a map of options${at ? '' : ' at the top level'}, got ${describe(value)}`,
    });
    return;
  }
  const seen = new Map<string, string>();
  for (const [key, child] of Object.entries(value)) {
    const name = kebabCase(key);
    const path = at ? `${at}.${key}` : key;
    if (seen.has(name)) {
      problems.push({ path, message: `same option as ${seen.get(name)}, given twice` });
      continue;
    }
    seen.set(name, key);
    const setting = node.settings.get(name);
    if (setting) {
      checkSetting(setting.validate, child, path, problems);
      continue;
    }
    const section = node.sections.get(name);
    const spec = node.options.get(name);
    // `pvc` and `prune` are both a command and an option: a map is the section, anything else the value.
    if (section && (!spec || child === null || isMap(child))) checkSection(section, child, path, problems);
    else if (spec) checkValue(spec, child, path, problems);
    else problems.push({ path, message: 'unknown option', hint: unknownHint(node, name) });
  }
}

function checkSetting(
  validate: ValidateFunction,
  value: unknown,
  path: string,
  problems: ConfigProblem[],
): void {
  if (validate(value)) return;
  for (const e of validate.errors ?? []) {
    // `/stages/1/budget` → `pipeline.stages[1].budget`
    const at = e.instancePath
      .split('/')
      .slice(1)
      .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
      .join('');
    const extra =
      e.keyword === 'additionalProperties'
        ? `: ${(e.params as { additionalProperty: string }).additionalProperty}`
        : e.keyword === 'enum'
          ? ` (${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')})`
          : '';
    problems.push({ path: `${path}${at}`, message: `${e.message}${extra}` });
  }
}

function checkValue(spec: OptionSpec, value: unknown, path: string, problems: ConfigProblem[]): void {
  const scalar = (v: unknown) => typeof v === 'string' || typeof v === 'number'; // `keep-last: 3`
  switch (kindOf(spec)) {
    case 'boolean':
      if (typeof value !== 'boolean' && !BOOLEAN_WORDS.includes(value as string))
        problems.push({ path, message: `expected true or false, got ${describe(value)}` });
      return;
    case 'string':
      if (!scalar(value)) problems.push({ path, message: `expected a string, got ${describe(value)}` });
      return;
    case 'list':
      if (Array.isArray(value)) {
        value.forEach((item, i) => {
          if (!scalar(item))
            problems.push({ path: `${path}[${i}]`, message: `expected a string, got ${describe(item)}` });
        });
      } else if (!scalar(value))
        problems.push({ path, message: `expected a string or a list of strings, got ${describe(value)}` });
  }
}

function unknownHint(node: ConfigNode, name: string): string {
  const known = [...node.options.keys(), ...node.sections.keys(), ...node.settings.keys()];
  const closest = known
    .map((k) => ({ k, d: editDistance(name, k) }))
    .filter(({ d }) => d <= (name.length > 5 ? 2 : 1))
    .sort((a, b) => a.d - b.d)[0];
  if (closest) return `did you mean ${closest.k}?`;
  if (NOT_IN_CONFIG.has(name)) return `--${name} is a command-line flag only`;
  if (node.words.length && GLOBAL_OPTIONS[name]) return `${name} is a global option: set it at the top level`;
  if (node.words.length && tree().options.has(name))
    return `no \`lifeboat ${node.words.join(' ')}\` command takes --${name}`;
  return 'see docs/configuration.md';
}

/** Levenshtein distance, for "did you mean": option names are short, so the quadratic table is fine. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

// ---- JSON Schema -----------------------------------------------------------------------------------------

/**
 * JSON Schema (draft-07, which editors' YAML plugins understand) for lifeboat.yaml, using only `type`,
 * `enum`, `properties`, `additionalProperties: false`, `items` and `anyOf`. It names options in their
 * kebab-case spelling; lifeboat also accepts camelCase and snake_case, which the schema flags.
 */
export function configSchema(): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'lifeboat.yaml',
    description:
      'Lifeboat configuration (docs/configuration.md). Generated by `node scripts/gen-cli-docs.ts`.',
    ...sectionSchema(tree()),
  };
}

function sectionSchema(node: ConfigNode): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const [name, spec] of node.options) properties[name] = valueSchema(spec);
  for (const [name, setting] of node.settings) properties[name] = setting.schema;
  for (const [word, child] of node.sections) {
    const section = {
      description: `options for \`lifeboat ${child.words.join(' ')}\`${child.sections.size ? ' commands' : ''}`,
      ...sectionSchema(child),
    };
    properties[word] = properties[word] ? { anyOf: [section, properties[word]] } : section;
  }
  return { type: ['object', 'null'], properties, additionalProperties: false };
}

function valueSchema(spec: OptionSpec): Record<string, unknown> {
  const description = spec.description;
  switch (kindOf(spec)) {
    case 'boolean':
      return { description, enum: [true, false, ...BOOLEAN_WORDS] };
    case 'string':
      return { description, type: ['string', 'number'] };
    case 'list':
      return { description, type: ['string', 'number', 'array'], items: { type: ['string', 'number'] } };
  }
}
