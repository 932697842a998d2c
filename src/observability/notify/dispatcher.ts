/**
 * The notification sink: for each event, the channels whose filters match (`on`, `scope`, `layers`), a
 * repeat within the channel's dedup window left out, the payload in the channel's shape, sent with
 * retries. A channel that fails never fails the command: the sink throws one error naming the failed
 * channels, and the event bus turns that into a warning.
 *
 * Deduplication survives restarts (a CronJob runs each time in a new pod): each sent notification leaves
 * a record `notify-dedup_<key>_<time>` in the repository, where <key> is a hash of channel, operation,
 * layer, result and error code; a record of the same key within the window means "already sent". The
 * names alone answer that (no decryption). Without a repository (it could not be opened) nothing is
 * deduplicated: a repeated message is better than a lost one.
 */
import { createHash } from 'node:crypto';
import type { EventSink, LifeboatEvent } from '../../core/events.ts';
import type { RepositoryAccess } from '../audit.ts';
import { channelUrl, type Channel } from './config.ts';
import { postJson, type PostResult } from './deliver.ts';
import { jsonPayload } from './json.ts';
import { messageFor, type Message } from './message.ts';
import { rocketchatPayload } from './rocketchat.ts';
import { slackPayload } from './slack.ts';
import { teamsPayload } from './teams.ts';

export const DEDUP_KIND = 'notify-dedup';
/** The operation the pipeline's notify stage reports a whole run with (scope `run`). */
export const PIPELINE_RUN = 'pipeline run';

export function payloadFor(c: Channel, m: Message): Record<string, unknown> {
  switch (c.type) {
    case 'slack':
      return slackPayload(m);
    case 'rocketchat':
      return rocketchatPayload(m);
    case 'teams':
      return teamsPayload(m);
    case 'json':
      return jsonPayload(m, c.name);
  }
}

export function wants(c: Channel, e: LifeboatEvent): boolean {
  if (c.on === 'failure' && e.result === 'success') return false;
  if (c.on === 'success' && e.result !== 'success') return false;
  if (c.scope === 'run') return e.operation === PIPELINE_RUN;
  return !c.layers?.length || (e.layer !== undefined && c.layers.includes(e.layer));
}

export function dedupKey(c: Channel, e: LifeboatEvent): string {
  return createHash('sha256')
    .update(JSON.stringify([c.name, e.operation, e.layer ?? '', e.result, e.error?.code ?? '']))
    .digest('hex')
    .slice(0, 32);
}

export interface SendResult extends PostResult {
  channel: string;
  type: string;
}

/** Sends one message to one channel (no filter, no dedup): `notify test` and the sink use it. */
export async function send(c: Channel, m: Message, env: NodeJS.ProcessEnv): Promise<SendResult> {
  let url: string;
  try {
    url = channelUrl(c, env);
  } catch (e) {
    return { channel: c.name, type: c.type, ok: false, attempts: 0, error: (e as Error).message };
  }
  const r = await postJson(url, payloadFor(c, m), { timeoutMs: c.timeoutMs, retries: c.retries });
  return { channel: c.name, type: c.type, ...r };
}

export interface NotifySinkOptions {
  channels: Channel[];
  env: NodeJS.ProcessEnv;
  access: RepositoryAccess;
  now?: () => number;
  debug?: (message: string) => void;
}

export function notifySink(o: NotifySinkOptions): EventSink {
  const now = o.now ?? Date.now;
  const debug = o.debug ?? (() => {});
  return {
    name: 'notifications',
    async deliver(event) {
      const failed: string[] = [];
      await Promise.all(
        o.channels
          .filter((c) => wants(c, event))
          .map(async (c) => {
            const key = dedupKey(c, event);
            const to = c.dedupWindowMs > 0 ? await o.access(event) : undefined;
            const store = to && 'repo' in to ? to : undefined;
            if (store) {
              const since = new Date(now() - c.dedupWindowMs).toISOString();
              const sent = await store.repo.records.list(DEDUP_KIND, key, store.via);
              if (sent.some((r) => r.time >= since)) {
                debug(
                  `notification to ${c.name} left out: the same outcome was sent within the dedup window`,
                );
                return;
              }
            }
            const r = await send(c, messageFor(event), o.env);
            if (!r.ok) {
              failed.push(`${c.name} (${r.error})`);
              return;
            }
            if (store)
              await store.repo.records.put(
                DEDUP_KIND,
                key,
                { channel: c.name, event: event.id, operation: event.operation, result: event.result },
                new Date(now()),
                store.via,
              );
          }),
      );
      if (failed.length) throw new Error(`notification not sent to ${failed.join(', ')}`);
    },
  };
}
