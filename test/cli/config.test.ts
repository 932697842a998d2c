// lifeboat.yaml is checked against the option tables before any command runs: a typo or a wrong type is a
// CONFIG error (exit 2) naming the dot path, and the published JSON Schema accepts exactly what the
// validator accepts. Local repository only; no server needed.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { Ajv } from 'ajv';
import { configProblems, configSchema } from '../../src/cli/config-schema.ts';
import { CONFIG_SETTINGS } from '../../src/cli/config-sections.ts';
import { runCli } from '../env/cli.ts';
import { PROJECT_ROOT, tempDir, type TempDir } from '../env/index.ts';

let work: TempDir;
let env: NodeJS.ProcessEnv;
before(async () => {
  work = await tempDir();
  // LIFEBOAT_CONFIG unset: the CLI reads ./lifeboat.yaml from its working directory.
  env = {
    XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    LIFEBOAT_CONFIG: undefined,
    LIFEBOAT_REPO: '',
    LIFEBOAT_PASSWORD: 'test-passphrase',
  };
});
after(() => work.cleanup());

async function runWithConfig(yaml: string, args: string[]) {
  await writeFile(path.join(work.path, 'lifeboat.yaml'), yaml);
  return runCli(args, { env, cwd: work.path });
}

for (const [yaml, expected] of [
  ['repoo: /x\n', 'repoo: unknown option — did you mean repo?'],
  [
    'mongodb:\n  backup:\n    keep-lastt: 3\n',
    'mongodb.backup.keep-lastt: unknown option — did you mean keep-last?',
  ],
  ['retention-dayz: 1\n', 'retention-dayz: unknown option — did you mean retention-days?'],
  ['repo: [a, b]\n', 'repo: expected a string, got a list — see docs/configuration.md'],
  [
    'mongodb:\n  backup:\n    retention-dayz: 1\n',
    'mongodb.backup.retention-dayz: unknown option — did you mean retention-days?',
  ],
]) {
  test(`config error, whatever the command: ${yaml.trim().replace(/\n\s*/g, ' ')}`, async () => {
    // `snapshots` reads none of these keys, and no repository exists: the file is checked first.
    const r = await runWithConfig(yaml, ['snapshots']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `lifeboat: config ./lifeboat.yaml: ${expected}\n`);
  });
}

test('--config FILE is checked too; --json lists every problem', async () => {
  const file = path.join(work.path, 'other.yaml');
  await writeFile(file, 'repoo: /x\nmongodb:\n  uri: [a]\n  oplog: maybe\n');
  const r = await runCli(['snapshots', '--config', file, '--json'], { env, cwd: work.path });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `lifeboat: config ${file}: repoo: unknown option (and 2 more) — did you mean repo?\n`,
  );
  assert.equal(r.json.error.code, 'CONFIG');
  assert.deepEqual(r.json.error.problems, [
    'repoo: unknown option',
    'mongodb.uri: expected a string, got a list',
    'mongodb.oplog: expected true or false, got "maybe"',
  ]);
});

test('a valid config still works: repo comes from the file', async () => {
  const repo = path.join(work.path, 'from-config');
  const yaml = [
    `repo: ${repo}`,
    'quiet: false',
    'keepLast: 2 # camelCase and snake_case spell the same option',
    'mongodb:',
    '  uri: mongodb://db:27017/?replicaSet=rs0',
    '  parallel: 4',
    '  backup:',
    '    retention_days: 7',
    '    oplog: true',
    '    tag: [nightly, prod]',
    'files:',
    'pvc: [data-0] # the pvc restore option, beside the pvc: section below',
    'forget:',
    '  keep-daily: 7',
    '  prune: yes',
    'prune:',
    '  max-unused: 5%',
    '',
  ].join('\n');
  const init = await runWithConfig(yaml, ['init', '--json']);
  assert.equal(init.code, 0, init.stderr);
  assert.equal(init.json.location, repo);
  const snaps = await runCli(['snapshots', '--json'], { env, cwd: work.path });
  assert.equal(snaps.code, 0, snaps.stderr);
  assert.deepEqual(snaps.json, []);
});

test('problems name the dot path as written, with a hint where one helps', () => {
  const problems = configProblems(
    parseYaml(
      [
        'mongodb:',
        '  repo: x',
        '  backup:',
        '    tag: [ok, {a: 1}]',
        'files:',
        '  uri: mongodb://x',
        '  keep_last: 1',
        '  keep-last: 2',
        'config: other.yaml',
        'unlock: 7',
        'verbose: maybe',
        'key-file:',
      ].join('\n'),
    ),
  );
  assert.deepEqual(problems, [
    {
      path: 'mongodb.repo',
      message: 'unknown option',
      hint: 'repo is a global option: set it at the top level',
    },
    { path: 'mongodb.backup.tag[1]', message: 'expected a string, got a map' },
    { path: 'files.uri', message: 'unknown option', hint: 'no `lifeboat files` command takes --uri' },
    { path: 'files.keep-last', message: 'same option as keep_last, given twice' },
    { path: 'config', message: 'unknown option', hint: '--config is a command-line flag only' },
    { path: 'unlock', message: 'expected a map of options, got 7' },
    { path: 'verbose', message: 'expected true or false, got "maybe"' },
    { path: 'key-file', message: 'expected a string, got nothing' },
  ]);
  assert.deepEqual(configProblems(null), [], 'an empty file is valid');
  assert.deepEqual(configProblems(['repo']), [
    { path: '', message: 'expected a map of options at the top level, got a list' },
  ]);
});

test('the examples in docs/configuration.md are valid', async () => {
  const doc = await readFile(path.join(PROJECT_ROOT, 'docs/configuration.md'), 'utf8');
  const examples = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(examples.length >= 2);
  for (const yaml of examples) assert.deepEqual(configProblems(parseYaml(yaml)), [], yaml);
});

// ---- the JSON Schema and the validator agree -------------------------------------------------------------

type Schema = Record<string, unknown>;

/**
 * Structured settings (config-sections.ts) are embedded as their own JSON Schema, which the validator
 * checks with ajv: they are checked with ajv here too (their schemas use more of JSON Schema).
 */
const SETTING_SCHEMAS = new Set<unknown>(CONFIG_SETTINGS.map((s) => s.schema));
const ajv = new Ajv({ allErrors: true, strict: false });

/** The subset of JSON Schema that configSchema() emits; anything else it emits fails here. */
function schemaAccepts(schema: Schema, value: unknown): boolean {
  if (SETTING_SCHEMAS.has(schema)) return ajv.validate(schema, value);
  const keywords = ['$schema', 'title', 'description', 'type', 'enum', 'properties', 'additionalProperties'];
  for (const k of Object.keys(schema)) assert.ok([...keywords, 'items', 'anyOf'].includes(k), `keyword ${k}`);
  if (schema.anyOf) return (schema.anyOf as Schema[]).some((s) => schemaAccepts(s, value));
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) return false;
  if (schema.type) {
    const jsonType =
      value === null
        ? 'null'
        : Array.isArray(value)
          ? 'array'
          : typeof value === 'object'
            ? 'object'
            : typeof value;
    if (!([schema.type].flat() as string[]).includes(jsonType)) return false;
  }
  if (Array.isArray(value) && schema.items)
    return value.every((item) => schemaAccepts(schema.items as Schema, item));
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && schema.properties) {
    assert.equal(schema.additionalProperties, false);
    const properties = schema.properties as Record<string, Schema>;
    return Object.entries(value).every(([k, v]) => k in properties && schemaAccepts(properties[k], v));
  }
  return true;
}

const SAMPLE_VALUES: unknown[] = [
  true,
  'yes',
  'maybe',
  3,
  'text',
  null,
  ['a', 2],
  ['a', ['nested']],
  [{ a: 1 }],
  { a: 1 },
  {},
];

/** Every sample value at every key the schema names, plus a stranger key, at every section. */
function* configsFromSchema(schema: Schema, wrap: (inner: unknown) => unknown): Generator<unknown> {
  const sections = [schema, ...((schema.anyOf as Schema[] | undefined) ?? [])].filter((s) => s.properties);
  for (const section of sections) {
    for (const [key, sub] of Object.entries(section.properties as Record<string, Schema>)) {
      for (const v of SAMPLE_VALUES) yield wrap({ [key]: v });
      yield* configsFromSchema(sub, (inner) => wrap({ [key]: inner }));
    }
    yield wrap({ 'no-such-option': 1 });
  }
}

test('the JSON Schema accepts exactly the configs the validator accepts', () => {
  const schema = configSchema();
  let valid = 0;
  let checked = 0;
  for (const config of configsFromSchema(schema, (inner) => inner)) {
    const validatorSays = configProblems(config).length === 0;
    assert.equal(schemaAccepts(schema, config), validatorSays, JSON.stringify(config));
    checked++;
    if (validatorSays) valid++;
  }
  assert.ok(checked > 1000 && valid > 300 && checked - valid > 300, `${checked} checked, ${valid} valid`);
});
