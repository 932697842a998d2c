/**
 * Writes docs/cli.md and docs/lifeboat.schema.json (the JSON Schema for lifeboat.yaml) from the commands'
 * own declarations, so the reference never drifts from the code.
 * `node scripts/gen-cli-docs.ts` (test/cli/docs.test.ts fails when either file is out of date).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../src/cli/commands.ts';
import { configSchema } from '../src/cli/config-schema.ts';
import { helpText } from '../src/cli/main.ts';

export function cliReference(): string {
  const parts = [
    '# Command reference',
    '',
    'Generated from the code by `node scripts/gen-cli-docs.ts`; every command also prints this with `--help`.',
    'Every option can also come from the environment variable shown, or from `lifeboat.yaml` (docs/configuration.md).',
    '',
    '```',
    helpText(),
    '```',
  ];
  for (const c of COMMANDS) parts.push('', `## lifeboat ${c.path.join(' ')}`, '', '```', helpText(c), '```');
  return parts.join('\n') + '\n';
}

/** Lists of scalars on one line, to keep the file readable; .prettierignore leaves it as written. */
export function configSchemaJson(): string {
  const text = JSON.stringify(configSchema(), null, 2);
  // JSON strings hold no raw newline, so "[" + newline only ever opens an array.
  return (
    text.replace(
      /\[\n\s+([^[\]{}\n]+(?:,\n\s+[^[\]{}\n]+)*)\n\s*\]/g,
      (_, items: string) => `[${items.split(/,\n\s+/).join(', ')}]`,
    ) + '\n'
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const docs = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs');
  for (const [file, text] of [
    ['cli.md', cliReference()],
    ['lifeboat.schema.json', configSchemaJson()],
  ]) {
    writeFileSync(path.join(docs, file), text);
    console.log(`wrote ${path.join(docs, file)}`);
  }
}
