/**
 * Runs one command and emits its event: the single path by which both the command line (main.ts) and the
 * pipeline's stages run commands, so every run — typed, scheduled or part of a recovery — is reported
 * the same way.
 */
import { makeEvent, eventActor, type EventResult, type LifeboatEvent } from '../core/events.ts';
import type { LifeboatError } from '../core/errors.ts';
import type { Command, CommandContext, OptionValues } from './command.ts';
import { EXIT_OK, exitCodeFor, toLifeboatError } from './exit.ts';

export interface Invocation<R> {
  result: R;
  exitCode: number;
  event?: LifeboatEvent;
}

/** Thrown by `invoke` when the command failed: the error, with the event that reported it. */
export class CommandFailed extends Error {
  readonly error: LifeboatError;
  readonly exitCode: number;
  readonly event?: LifeboatEvent;

  constructor(error: LifeboatError, exitCode: number, event?: LifeboatEvent) {
    super(error.message);
    this.error = error;
    this.exitCode = exitCode;
    this.event = event;
  }
}

export async function invoke<R>(
  cmd: Command<R>,
  ctx: CommandContext,
  values: OptionValues,
  positionals: string[],
): Promise<Invocation<R>> {
  const startedAt = new Date();
  const emit = async (
    result: EventResult,
    exitCode: number,
    detail: ReturnType<NonNullable<Command<R>['event']>> = {},
    error?: LifeboatError,
  ): Promise<LifeboatEvent | undefined> => {
    // A dry run (or --diff) changes and verifies nothing: no event, so no audit record, no
    // notification, and no metric that mistakes it for a backup.
    if (!cmd.effect || values['dry-run'] === true || values.diff === true) return undefined;
    const event = makeEvent({
      operation: cmd.path.join(' '),
      effect: cmd.effect,
      layer: cmd.layer,
      ...detail,
      result: detail.result ?? result,
      exitCode,
      startedAt,
      finishedAt: new Date(),
      repository: ctx.globals.repo,
      runId: ctx.runId,
      stage: ctx.stage,
      actor: eventActor(ctx.env),
      error: error ? { code: error.code, message: error.message } : undefined,
    });
    ctx.log.info('event', { event });
    await ctx.events.emit(event);
    return event;
  };
  let result: R;
  try {
    result = await cmd.run(ctx, values, positionals);
  } catch (e) {
    // Whatever a source threw once the signal fired (a closed socket, an aborted read), the cause is
    // the signal.
    const error = ctx.signal.aborted ? toLifeboatError(ctx.signal.reason) : toLifeboatError(e);
    const exitCode = exitCodeFor(error);
    const event = await emit(error.code === 'INTERRUPTED' ? 'interrupted' : 'failure', exitCode, {}, error);
    throw new CommandFailed(error, exitCode, event);
  }
  const exitCode = cmd.exitCode?.(result) ?? EXIT_OK;
  const event = await emit(
    exitCode === EXIT_OK ? 'success' : 'failure',
    exitCode,
    cmd.event?.(result, values),
  );
  return { result, exitCode, event };
}
