/**
 * `--exclude` patterns, with restic's semantics. A pattern is a glob over path components:
 * - `*` matches any run of characters within one component (dot files included: `.cache` is data like
 *   any other), `?` one character, `[a-z]` / `[!a-z]` a class, `\` escapes the next character;
 * - a component that is exactly `**` matches any number of components, none included;
 * - a pattern starting with `/` is anchored at the root of the absolute path; any other pattern may match
 *   at any depth (`*.log`, `node_modules`, `build/tmp`);
 * - a path also matches when one of its parents does, so an excluded directory takes its contents with it.
 *
 * node's path.matchesGlob is not used: it follows minimatch, where `*` and `**` skip dot files, so an
 * exclude meant for every `cache` directory under /home would quietly keep `/home/alice/.config/cache`.
 */
import { readFile } from 'node:fs/promises';
import { LifeboatError } from '../../core/errors.ts';

const escape = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

function invalid(pattern: string, why: string): LifeboatError {
  return new LifeboatError('USAGE', `exclude pattern "${pattern}": ${why}`, {
    hint: 'escape a literal [ ] * ? or \\ with a backslash',
  });
}

function component(glob: string, pattern: string): string {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\') {
      if (i + 1 === glob.length) throw invalid(pattern, 'ends with a lone backslash');
      re += escape(glob[++i]);
    } else if (c === '[') {
      let j = i + 1;
      const negate = glob[j] === '!' || glob[j] === '^';
      if (negate) j++;
      let body = '';
      // A `]` right after the opening bracket is a member, as in shells.
      for (let first = true; j < glob.length && (glob[j] !== ']' || first); j++, first = false) {
        if (glob[j] === '\\' && j + 1 < glob.length) body += escape(glob[++j]);
        else if (glob[j] === '-' && body && glob[j + 1] !== ']') body += '-';
        else body += escape(glob[j]);
      }
      if (j >= glob.length) throw invalid(pattern, 'has an unterminated [');
      re += negate ? `[^/${body}]` : `[${body}]`;
      i = j;
    } else re += escape(c);
  }
  return re;
}

export function compilePattern(pattern: string): RegExp {
  const parts = pattern.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) throw invalid(pattern, 'matches nothing (or everything)');
  let body = '';
  for (const p of parts) body += p === '**' ? '(?:/[^/]*)*' : '/' + component(p, pattern);
  const anywhere = pattern.startsWith('/') ? '' : '(?:/[^/]*)*';
  return new RegExp(`^${anywhere}${body}(?:/.*)?$`, 's');
}

/** A test for absolute paths; throws USAGE for a malformed pattern, before anything is read. */
export function excluder(patterns: string[]): (absPath: string) => boolean {
  const res = patterns.map(compilePattern);
  if (res.length === 0) return () => false;
  return (p) => res.some((re) => re.test(p));
}

/** `--exclude-file`: one pattern per line; blank lines and lines starting with `#` are ignored. */
export async function readExcludeFile(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new LifeboatError('USAGE', `cannot read exclude file ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}
