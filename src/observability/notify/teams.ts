/**
 * Microsoft Teams through a Workflows webhook ("Post to a channel when a webhook request is received";
 * the Office 365 connectors are retired): a `message` whose attachment is an Adaptive Card. Teams
 * rejects messages over about 28 KB: the card is kept under TEAMS_MAX_BYTES, long texts cut first.
 */
import { truncate, type Message } from './message.ts';

export const TEAMS_MAX_BYTES = 28_000;

function card(m: Message, textMax: number): Record<string, unknown> {
  const body: Record<string, unknown>[] = [
    {
      type: 'TextBlock',
      size: 'Medium',
      weight: 'Bolder',
      wrap: true,
      color: m.status === 'ok' ? 'Good' : 'Attention',
      text: truncate(m.title, Math.min(textMax, 500)),
    },
    { type: 'TextBlock', wrap: true, text: truncate(m.summary, textMax) },
    {
      type: 'FactSet',
      facts: m.facts.map(([title, value]) => ({ title, value: truncate(value, textMax) })),
    },
  ];
  if (m.error)
    body.push({ type: 'TextBlock', wrap: true, color: 'Attention', text: truncate(m.error, textMax) });
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body,
        },
      },
    ],
  };
}

export function teamsPayload(m: Message): Record<string, unknown> {
  for (let max = 20_000; ; max = Math.floor(max / 2)) {
    const c = card(m, max);
    if (Buffer.byteLength(JSON.stringify(c)) <= TEAMS_MAX_BYTES || max < 16) return c;
  }
}
