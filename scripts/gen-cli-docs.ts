/**
 * Writes docs/cli.md from the commands' own declarations, so the reference never drifts from the code.
 * `node scripts/gen-cli-docs.ts` (test/cli/docs.test.ts fails when the file is out of date).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../src/cli/commands.ts';
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

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs/cli.md');
  writeFileSync(out, cliReference());
  console.log(`wrote ${out}`);
}
