/** The one place that turns errors into exit codes: 0 ok, 1 failed, 2 usage, 3 integrity damage found. */
import { LifeboatError } from '../core/errors.ts';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTEGRITY = 3;

export function exitCodeFor(e: unknown): number {
  if (e instanceof LifeboatError) {
    if (e.code === 'USAGE' || e.code === 'CONFIG') return EXIT_USAGE;
    if (e.code === 'INTEGRITY') return EXIT_INTEGRITY;
  }
  return EXIT_FAILED;
}

export function toLifeboatError(e: unknown): LifeboatError {
  if (e instanceof LifeboatError) return e;
  return new LifeboatError('INTERNAL', `unexpected error: ${(e as Error)?.message ?? String(e)}`, {
    hint: 'run again with --verbose and report it',
    cause: e,
  });
}
