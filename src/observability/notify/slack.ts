/**
 * Slack incoming webhook (https://api.slack.com/messaging/webhooks): `text` (the notification fallback)
 * and Block Kit `blocks`. Limits: a header's plain_text 150 characters, a section's text 3,000, top-level
 * text kept to 4,000 (Slack truncates longer messages); at most 50 blocks.
 */
import { truncate, type Message } from './message.ts';

export const SLACK_LIMITS = { text: 4000, header: 150, section: 3000 };

export function slackPayload(m: Message): Record<string, unknown> {
  const icon = m.status === 'ok' ? ':white_check_mark:' : ':rotating_light:';
  const facts = m.facts.map(([k, v]) => `*${k}:* ${v}`).join('\n');
  const blocks: Record<string, unknown>[] = [
    { type: 'header', text: { type: 'plain_text', text: truncate(m.title, SLACK_LIMITS.header) } },
    {
      type: 'section',
      text: { type: 'mrkdwn', text: truncate(`${icon} ${m.summary}`, SLACK_LIMITS.section) },
    },
    { type: 'section', text: { type: 'mrkdwn', text: truncate(facts || '-', SLACK_LIMITS.section) } },
  ];
  if (m.error)
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: truncate('```' + m.error + '```', SLACK_LIMITS.section) },
    });
  return {
    text: truncate(`${m.title}: ${m.summary}${m.error ? ` — ${m.error}` : ''}`, SLACK_LIMITS.text),
    blocks,
  };
}
