/**
 * The sinks each command's event goes to. Every sink is built for one command run (it may use what the
 * command opened, e.g. `ctx.repository`) and must never throw into the command: the bus reports a
 * failed delivery as a warning.
 *
 * - the audit log (src/observability/audit.ts): one record per event in the repository;
 * - notifications (src/observability/notify/): the channels of `notify:` whose filters match.
 */
import type { EventSink, LifeboatEvent } from '../core/events.ts';
import { isLifeboatError, LifeboatError } from '../core/errors.ts';
import { Repository } from '../core/repository/repository.ts';
import { openBackend } from '../core/storage/open.ts';
import { auditSink, type RepositoryAccess } from '../observability/audit.ts';
import { channelsFrom } from '../observability/notify/config.ts';
import type { NotifySinkOptions } from '../observability/notify/dispatcher.ts';
import type { CommandContext } from './command.ts';
import { keystoreFor } from './repo.ts';

/** How long a sink's repository writes may take: shorter once interrupted (main.ts exits after 9 s). */
const DEADLINE_MS = 30_000;
const DEADLINE_INTERRUPTED_MS = 5_000;

/**
 * Failures after which no repository is opened for the event. A usage or config error did nothing, so
 * there is nothing to record; when the repository itself is the failure (none there, the key does not
 * open it, the keystore cannot be reached), a record cannot be sealed — opening it again would only fail
 * the same way — so the event goes to the log instead.
 */
const QUIET = '\0';
const NO_OPEN: Record<string, string> = {
  USAGE: QUIET + 'nothing was done (usage error)',
  CONFIG: QUIET + 'nothing was done (configuration error)',
  NO_REPOSITORY: QUIET + 'there is no repository to write it to',
  WRONG_KEY: QUIET + 'the key does not open the repository, so no record can be sealed',
  KEY_UNAVAILABLE: QUIET + 'the repository key is unavailable, so no record can be sealed',
};

/**
 * The repository for the sinks of one command run: the one the command opened (`ctx.repository`), else —
 * for commands that need none (secrets, init) or that failed before opening it (MongoDB unreachable) —
 * opened here, read-only and without a lock (opening reads the config and the key records; records need
 * no lock). Writes go through storage bound to a fresh deadline, never to the command's signal: an
 * interrupted command still gets its record.
 */
export function repositoryAccess(ctx: CommandContext): RepositoryAccess {
  let own: Promise<Repository | string> | undefined;
  const deadline = () => AbortSignal.timeout(ctx.signal.aborted ? DEADLINE_INTERRUPTED_MS : DEADLINE_MS);
  return async (event: LifeboatEvent) => {
    if (ctx.repository) return { repo: ctx.repository, via: ctx.repository.detached(deadline()) };
    const skip = event.error && NO_OPEN[event.error.code];
    if (skip) return missing(skip);
    own ??= (async () => {
      const signal = deadline();
      try {
        const backend = await openBackend(ctx.globals.repo, ctx.env);
        try {
          // No repository there (a secrets-only setup): nothing to open, and no keystore to ask.
          const config = await backend.list('config', { signal })[Symbol.asyncIterator]().next();
          if (config.done)
            throw new LifeboatError('NO_REPOSITORY', `no Lifeboat repository at ${backend.location}`);
          const repo = await Repository.open(backend, await keystoreFor(ctx), { signal });
          ctx.defer(() => repo.close());
          return repo;
        } catch (e) {
          await backend.close().catch(() => {});
          throw e;
        }
      } catch (e) {
        return `${isLifeboatError(e, 'NO_REPOSITORY') ? QUIET : ''}the repository could not be opened: ${(e as Error).message}`;
      }
    })();
    const repo = await own;
    if (typeof repo === 'string') return missing(repo);
    return { repo, via: repo.backend };
  };
}

function missing(reason: string): { missing: string; quiet: boolean } {
  return reason.startsWith(QUIET)
    ? { missing: reason.slice(1), quiet: true }
    : { missing: reason, quiet: false };
}

export function eventSinks(ctx: CommandContext): EventSink[] {
  const access = repositoryAccess(ctx);
  const channels = channelsFrom(ctx.section('notify'));
  return [
    ...(channels.length
      ? [lazyNotifySink({ channels, env: ctx.env, access, debug: (m) => ctx.log.debug(m) })]
      : []),
    auditSink(access, (reason, event, quiet) =>
      // Without a record the log is the only trace: the event in full (it holds no secret). At info
      // level when the command's own error already says why (no repository, wrong key) or nothing was
      // done; a warning when a record should have been written and could not.
      ctx.log.log(quiet ? 'info' : 'warn', `no audit record written: ${reason}`, { event }),
    ),
  ];
}

/** The notification dispatcher and its payload formats load with the first event, not at start-up. */
function lazyNotifySink(o: NotifySinkOptions): EventSink {
  let sink: Promise<EventSink> | undefined;
  return {
    name: 'notifications',
    async deliver(event) {
      sink ??= import('../observability/notify/dispatcher.ts').then((m) => m.notifySink(o));
      await (await sink).deliver(event);
    },
  };
}
