/**
 * `notify:` in lifeboat.yaml: the channels notifications go to. Declared once as a ConfigSetting with its
 * JSON Schema (config-sections.ts), so the config check and the published schema agree.
 *
 *   notify:
 *     channels:
 *       - name: ops                  # shown in `notify test` and in warnings
 *         type: rocketchat           # rocketchat | slack | teams | json
 *         url-env: OPS_WEBHOOK_URL   # or url-file: /var/run/secrets/lifeboat/ops-webhook
 *         on: failure                # failure (default) | success | always
 *         scope: command             # command (default: every event) | run (`pipeline run` only)
 *         layers: [mongodb, files]   # scope command: only these layers (default all)
 *         timeout: 10s               # per request (default 10s)
 *         retries: 3                 # after the first attempt (default 3)
 *         dedup-window: 1h           # repeats within it are sent once (default 1h; 0 = off)
 */
import { readFileSync } from 'node:fs';
import { LifeboatError } from '../../core/errors.ts';
import type { ConfigSetting } from '../../cli/config-sections.ts';

export const CHANNEL_TYPES = ['rocketchat', 'slack', 'teams', 'json'] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];

const DURATION = '^(0|\\d+(ms|s|m|h|d))$';

export const NOTIFY_CHANNELS_SETTING: ConfigSetting = {
  path: ['notify', 'channels'],
  schema: {
    description: 'notification channels (docs/monitoring.md, "Notifications")',
    type: 'array',
    items: {
      type: 'object',
      required: ['name', 'type'],
      additionalProperties: false,
      properties: {
        name: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'channel name' },
        type: {
          enum: [...CHANNEL_TYPES],
          description: 'rocketchat | slack | teams | json (Alertmanager shape)',
        },
        'url-env': {
          type: 'string',
          pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
          description: 'environment variable holding the webhook URL',
        },
        'url-file': {
          type: 'string',
          minLength: 1,
          description: 'file holding the webhook URL (a mounted Secret)',
        },
        on: {
          enum: ['failure', 'success', 'always'],
          description: 'which results to send (default failure)',
        },
        scope: {
          enum: ['command', 'run'],
          description: 'command: every event; run: only `pipeline run` (default command)',
        },
        layers: {
          type: 'array',
          items: { type: 'string' },
          description: 'scope command: only events of these layers',
        },
        timeout: {
          type: ['string', 'integer'],
          pattern: DURATION,
          minimum: 1,
          description: 'per request (default 10s)',
        },
        retries: {
          type: 'integer',
          minimum: 0,
          maximum: 10,
          description: 'retries after the first (default 3)',
        },
        'dedup-window': {
          type: ['string', 'integer'],
          pattern: DURATION,
          minimum: 0,
          description: 'send a repeat of the same outcome once per window (default 1h, 0 = off)',
        },
      },
      oneOf: [{ required: ['url-env'] }, { required: ['url-file'] }],
    },
  },
};

export interface Channel {
  name: string;
  type: ChannelType;
  urlEnv?: string;
  urlFile?: string;
  on: 'failure' | 'success' | 'always';
  scope: 'command' | 'run';
  layers?: string[];
  timeoutMs: number;
  retries: number;
  dedupWindowMs: number;
}

const MS: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };

/** `10s`, `5m`, `1h`, `250ms`; a bare number is seconds (`0` turns dedup off). */
export function durationMs(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const s = String(value);
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(s);
  if (!m) throw new LifeboatError('CONFIG', `"${s}" is not a duration`, { hint: 'e.g. 10s, 5m, 1h, 0' });
  return Number(m[1]) * MS[m[2] ?? 's'];
}

/** The channels of the `notify` section (already checked against the schema by the config check). */
export function channelsFrom(section: Record<string, unknown>): Channel[] {
  const raw = section.channels;
  if (!Array.isArray(raw)) return [];
  const seen = new Set<string>();
  return raw.map((c: Record<string, unknown>) => {
    const name = String(c.name);
    if (seen.has(name))
      throw new LifeboatError('CONFIG', `notify.channels: the name "${name}" is used twice`, {
        hint: 'give every channel its own name',
      });
    seen.add(name);
    return {
      name,
      type: c.type as ChannelType,
      urlEnv: c['url-env'] as string | undefined,
      urlFile: c['url-file'] as string | undefined,
      on: (c.on as Channel['on']) ?? 'failure',
      scope: (c.scope as Channel['scope']) ?? 'command',
      layers: c.layers as string[] | undefined,
      timeoutMs: durationMs(c.timeout, 10_000),
      retries: (c.retries as number | undefined) ?? 3,
      dedupWindowMs: durationMs(c['dedup-window'], 3600_000),
    };
  });
}

/** The webhook URL, from the environment or a file; the error names where it was looked for, never a URL. */
export function channelUrl(c: Channel, env: NodeJS.ProcessEnv): string {
  let url: string | undefined;
  let from: string;
  if (c.urlEnv) {
    from = `environment variable ${c.urlEnv}`;
    url = env[c.urlEnv]?.trim();
  } else {
    from = `file ${c.urlFile}`;
    try {
      url = readFileSync(c.urlFile!, 'utf8').trim();
    } catch (e) {
      throw new LifeboatError(
        'CONFIG',
        `channel ${c.name}: cannot read ${from} (${(e as NodeJS.ErrnoException).code})`,
        {
          hint: 'mount the Secret holding the webhook URL there',
        },
      );
    }
  }
  if (!url)
    throw new LifeboatError('CONFIG', `channel ${c.name}: ${from} is empty or not set`, {
      hint: 'put the webhook URL there',
    });
  if (!/^https?:\/\/[^\s]+$/.test(url))
    throw new LifeboatError('CONFIG', `channel ${c.name}: ${from} does not hold an http(s) URL`, {
      hint: 'put the webhook URL (https://…) there, nothing else',
    });
  return url;
}
