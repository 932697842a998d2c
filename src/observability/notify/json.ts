/**
 * Generic JSON in the shape of Alertmanager's webhook (version "4"), which many receivers already
 * understand (alert routers, chat bridges, ticketing): one alert per event, `firing` unless the
 * command succeeded (`resolved`), labels to route on, annotations to read; plus the event itself under
 * `lifeboat` for receivers that want every field.
 */
import { createHash } from 'node:crypto';
import { truncate, type Message } from './message.ts';

export const JSON_LIMITS = { annotation: 4096 };

export function jsonPayload(m: Message, receiver: string): Record<string, unknown> {
  const e = m.event;
  const status = m.status === 'ok' ? 'resolved' : 'firing';
  const labels: Record<string, string> = {
    alertname: m.status === 'ok' ? 'LifeboatCommandSucceeded' : 'LifeboatCommandFailed',
    severity: e.result === 'success' ? 'none' : e.result === 'warning' ? 'warning' : 'critical',
    operation: e.operation,
    result: e.result,
    host: e.host,
    ...(e.layer ? { layer: e.layer } : {}),
    ...(e.error ? { code: e.error.code } : {}),
  };
  const annotations: Record<string, string> = {
    summary: truncate(m.title, JSON_LIMITS.annotation),
    description: truncate(
      `${m.summary}${m.error ? `\n${m.error}` : ''}\n${m.facts.map(([k, v]) => `${k}: ${v}`).join('\n')}`,
      JSON_LIMITS.annotation,
    ),
  };
  const fingerprint = createHash('sha256')
    .update(JSON.stringify(Object.entries(labels).sort()))
    .digest('hex')
    .slice(0, 16);
  const groupLabels = { alertname: labels.alertname };
  return {
    version: '4',
    groupKey: `{}:{alertname="${labels.alertname}"}`,
    truncatedAlerts: 0,
    status,
    receiver,
    groupLabels,
    commonLabels: labels,
    commonAnnotations: annotations,
    externalURL: '',
    alerts: [
      {
        status,
        labels,
        annotations,
        startsAt: e.startedAt,
        endsAt: status === 'resolved' ? e.finishedAt : '0001-01-01T00:00:00Z',
        generatorURL: '',
        fingerprint,
      },
    ],
    lifeboat: e,
  };
}
