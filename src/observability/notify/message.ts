/**
 * What a notification says, independent of the channel: a title, a one-line summary, facts (name/value),
 * the error if any. Built from the event only, so it holds nothing the event does not (no secret value).
 */
import type { LifeboatEvent } from '../../core/events.ts';

export interface Message {
  title: string;
  /** `ok` for success, `problem` for everything else (warning, partial, failure, interrupted). */
  status: 'ok' | 'problem';
  summary: string;
  facts: [string, string][];
  error?: string;
  event: LifeboatEvent;
}

const VERB: Record<string, string> = {
  success: 'succeeded',
  warning: 'succeeded with warnings',
  partial: 'partly failed',
  failure: 'failed',
  interrupted: 'was interrupted',
};

/** Cuts `s` to at most `max` characters, the last one an ellipsis. */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  return max <= 1 ? '…'.slice(0, max) : s.slice(0, max - 1) + '…';
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

export function messageFor(event: LifeboatEvent, test = false): Message {
  const what = `${event.operation}${event.layer && !event.operation.startsWith(event.layer) ? ` (${event.layer})` : ''}`;
  const title = test
    ? `Lifeboat test message from ${event.host}`
    : `Lifeboat: ${what} ${VERB[event.result] ?? event.result}`;
  const facts: [string, string][] = [];
  const add = (k: string, v: string | number | undefined) => {
    if (v !== undefined && v !== '') facts.push([k, String(v)]);
  };
  add('Result', event.result);
  add('Layer', event.layer);
  add('Snapshot', event.snapshot?.slice(0, 12));
  add('Run', event.runId);
  add('Stage', event.stage);
  add('Duration', `${(event.durationMs / 1000).toFixed(1)} s`);
  if (event.bytesProcessed !== undefined) add('Processed', bytes(event.bytesProcessed));
  if (event.bytesAdded !== undefined) add('Added', bytes(event.bytesAdded));
  add('Items', event.items);
  add('Host', event.host);
  add('Actor', event.actor);
  add('Repository', event.repository);
  for (const [k, v] of Object.entries(event.details ?? {})) add(k, String(v));
  const summary = test
    ? 'If you can read this, the channel works.'
    : `${what} on ${event.host} ${VERB[event.result] ?? event.result} at ${event.finishedAt}`;
  return {
    title,
    status: event.result === 'success' ? 'ok' : 'problem',
    summary,
    facts,
    ...(event.error ? { error: `${event.error.code}: ${event.error.message}` } : {}),
    event,
  };
}
