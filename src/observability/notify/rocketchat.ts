/**
 * Rocket.Chat incoming webhook (Administration → Integrations → Incoming): `text` plus `attachments`
 * with a colour, a title, a text and short fields. Rocket.Chat rejects messages longer than its
 * Message_MaxAllowedSize (5,000 characters by default): text and attachment text are kept within it.
 */
import { truncate, type Message } from './message.ts';

export const ROCKETCHAT_LIMITS = { text: 5000, attachmentText: 5000, field: 500 };

export function rocketchatPayload(m: Message): Record<string, unknown> {
  const icon = m.status === 'ok' ? ':white_check_mark:' : ':rotating_light:';
  return {
    text: truncate(`${icon} ${m.title}`, ROCKETCHAT_LIMITS.text),
    attachments: [
      {
        title: truncate(m.summary, 500),
        color: m.status === 'ok' ? '#2eb886' : '#d00000',
        text: truncate(m.error ?? m.summary, ROCKETCHAT_LIMITS.attachmentText),
        fields: m.facts.map(([title, value]) => ({
          short: true,
          title,
          value: truncate(value, ROCKETCHAT_LIMITS.field),
        })),
      },
    ],
  };
}
