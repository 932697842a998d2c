import { makeEvent, eventActor } from '../core/events.ts';
import { LifeboatError } from '../core/errors.ts';
import type { SendResult } from '../observability/notify/dispatcher.ts';
import { str, usageError, type Command } from './command.ts';
import { EXIT_FAILED, EXIT_OK } from './exit.ts';

export const notifyTestCommand: Command<SendResult[]> = {
  path: ['notify', 'test'],
  summary: 'send a test message to each notification channel (notify.channels) and report each',
  options: {
    channel: { type: 'string', arg: 'NAME', description: 'only this channel' },
  },
  help: `Bypasses the channels' on/scope/layers filters and deduplication; uses their retries and timeout.
Exit code 1 if any channel failed. See docs/monitoring.md, "Notifications".`,
  async run(ctx, values) {
    const { channelsFrom } = await import('../observability/notify/config.ts');
    const { send } = await import('../observability/notify/dispatcher.ts');
    const { messageFor } = await import('../observability/notify/message.ts');
    const all = channelsFrom(ctx.section('notify'));
    if (all.length === 0)
      throw new LifeboatError('CONFIG', `no notification channels in ${ctx.configFile}`, {
        hint: 'add notify.channels (docs/monitoring.md, "Notifications")',
      });
    const only = str(values.channel);
    const channels = only ? all.filter((c) => c.name === only) : all;
    if (channels.length === 0)
      throw usageError(`no channel named "${only}"`, `channels: ${all.map((c) => c.name).join(', ')}`);
    const now = new Date();
    const event = makeEvent({
      operation: 'notify test',
      effect: 'verify',
      result: 'success',
      exitCode: 0,
      startedAt: now,
      finishedAt: now,
      repository: ctx.globals.repo,
      actor: eventActor(ctx.env),
    });
    return Promise.all(channels.map((c) => send(c, messageFor(event, true), ctx.env)));
  },
  exitCode: (rows) => (rows.every((r) => r.ok) ? EXIT_OK : EXIT_FAILED),
  human(rows, out) {
    out.table(
      rows.map((r) => [
        r.channel,
        r.type,
        r.ok ? 'sent' : 'FAILED',
        r.status !== undefined ? String(r.status) : '',
        String(r.attempts),
        r.error ?? '',
      ]),
      ['CHANNEL', 'TYPE', 'RESULT', 'HTTP', 'ATTEMPTS', 'ERROR'],
    );
  },
};
