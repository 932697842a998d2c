/**
 * The sinks each command's event goes to. Every sink is built for one command run (it may use what the
 * command opened, e.g. `ctx.repository`) and must never throw into the command: the bus reports a
 * failed delivery as a warning.
 */
import type { EventSink } from '../core/events.ts';
import type { CommandContext } from './command.ts';

export function eventSinks(ctx: CommandContext): EventSink[] {
  void ctx;
  return [];
}
