/**
 * Every failure an operator can see is a LifeboatError: a stable machine-readable code, a one-line message
 * naming the cause, and a hint naming the fix. The CLI turns these into exit codes in exactly one place
 * (src/cli/exit.ts); nothing else decides an exit status.
 */

export type ErrorCode =
  | 'USAGE' // bad flags or arguments
  | 'CONFIG' // configuration file or environment invalid
  | 'NOT_FOUND' // a snapshot, object, collection, … does not exist
  | 'ALREADY_EXISTS' // write-once object exists; repository already initialised
  | 'NO_REPOSITORY' // the repository location holds no repository
  | 'WRONG_KEY' // no key record opens with the given passphrase / key
  | 'KEY_UNAVAILABLE' // the keystore cannot be reached or the key is disabled/deleted
  | 'INTEGRITY' // data failed authentication, hash or structure checks
  | 'LOCKED' // another process holds a conflicting lock
  | 'BUSY' // the same job already runs (a named lock such as one pipeline run per slot is held)
  | 'UNREACHABLE' // a server or storage endpoint cannot be reached
  | 'AUTH' // credentials rejected
  | 'PERMISSION' // authenticated but not allowed (RBAC, ACL, file mode)
  | 'NO_SPACE' // disk or quota full
  | 'CONFLICT' // target holds data that would be overwritten (e.g. duplicate keys without --drop)
  | 'TIMEOUT' // waited too long for something to become ready
  | 'UNSUPPORTED' // the peer does not support a required feature
  | 'VERIFY_FAILED' // post-restore verification found a difference
  | 'INTERRUPTED' // stopped by a signal
  | 'EMPTY' // a backup found nothing to back up (wrong filter, wrong database)
  | 'INTERNAL'; // a bug: please report

export interface LifeboatErrorOptions {
  hint?: string;
  cause?: unknown;
  details?: Record<string, unknown>;
  /**
   * The same call may succeed if made again: a connection reset or refused, a timeout, 429/5xx
   * throttling. Storage backends set it; the retry wrapper (storage/wrappers/retrying.ts) acts on it.
   */
  transient?: boolean;
}

export class LifeboatError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;
  readonly transient: boolean;

  constructor(code: ErrorCode, message: string, options: LifeboatErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LifeboatError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
    this.transient = options.transient ?? false;
  }

  /** The single line an operator reads: cause, then what to do. */
  oneLine(): string {
    return this.hint ? `${this.message} — ${this.hint}` : this.message;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, hint: this.hint, ...(this.details ?? {}) };
  }
}

export function isLifeboatError(e: unknown, code?: ErrorCode): e is LifeboatError {
  return e instanceof LifeboatError && (code === undefined || e.code === code);
}

/** Worth another try: see LifeboatErrorOptions.transient. */
export function isTransient(e: unknown): boolean {
  return e instanceof LifeboatError && e.transient;
}

/**
 * Maps low-level Node/system errors onto operator-facing ones. Sources and backends call this at their
 * boundary so that ENOSPC, ECONNREFUSED and friends always read the same way.
 */
export function fromSystemError(e: unknown, what: string): LifeboatError {
  if (e instanceof LifeboatError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err?.code;
  const msg = err?.message ?? String(e);
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new LifeboatError('NO_SPACE', `${what}: no space left on device`, {
        hint: 'free disk space or grow the volume, then run the command again (nothing was committed)',
        cause: e,
      });
    case 'EACCES':
    case 'EPERM':
      return new LifeboatError('PERMISSION', `${what}: permission denied (${err.path ?? ''})`, {
        hint: 'check the file owner and mode, or run as the user that owns the repository',
        cause: e,
      });
    case 'ENOENT':
      return new LifeboatError('NOT_FOUND', `${what}: ${err.path ?? 'path'} does not exist`, { cause: e });
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENOTFOUND':
    case 'ETIMEDOUT':
    case 'ECONNRESET':
    case 'EAI_AGAIN':
      return new LifeboatError('UNREACHABLE', `${what}: cannot connect (${code})`, {
        hint: 'check the address, port, DNS and firewall, and that the server is running',
        cause: e,
        transient: true,
      });
    default:
      return new LifeboatError('INTERNAL', `${what}: ${msg}`, { cause: e });
  }
}
