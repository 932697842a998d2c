/**
 * The one place that turns errors into exit codes: 0 ok, 1 failed, 2 usage, 3 integrity damage found (or
 * a backup that could not read everything), 4 busy (the same job already runs: `pipeline run` in a slot
 * another run holds), 130/143 stopped by SIGINT/SIGTERM (128 + the signal number, as shells and
 * Kubernetes report it).
 */
import { LifeboatError } from '../core/errors.ts';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTEGRITY = 3;
export const EXIT_BUSY = 4;
export const EXIT_SIGINT = 130;
export const EXIT_SIGTERM = 143;

export function exitCodeForSignal(sig: NodeJS.Signals): number {
  return sig === 'SIGTERM' ? EXIT_SIGTERM : EXIT_SIGINT;
}

export function exitCodeFor(e: unknown): number {
  if (e instanceof LifeboatError) {
    if (e.code === 'USAGE' || e.code === 'CONFIG') return EXIT_USAGE;
    if (e.code === 'INTEGRITY') return EXIT_INTEGRITY;
    if (e.code === 'BUSY') return EXIT_BUSY;
    if (e.code === 'INTERRUPTED') return e.details?.signal === 'SIGTERM' ? EXIT_SIGTERM : EXIT_SIGINT;
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
