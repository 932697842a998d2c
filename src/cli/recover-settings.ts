/**
 * The structured lifeboat.yaml settings of `lifeboat recover` (config-sections.ts lists them). Kept apart
 * from cmd_recover.ts so that the config check can load them without the command table.
 */
import type { ConfigSetting } from './config-sections.ts';

// The schemas keep to the subset the published schema is tested with (type, enum, properties, items,
// anyOf); the finer checks (duration syntax, workload spelling, the URL) are made where the values are read.
const DURATION = { type: ['string', 'number'] };

/** `recover.budgets`: the RTO of each phase and of the whole recovery. */
export const RECOVER_BUDGETS_SETTING: ConfigSetting = {
  path: ['recover', 'budgets'],
  schema: {
    description:
      "recovery time budgets (the guide's RTOs): 30m, 90s, 1h or minutes; over 80 % is a warning, over it a failure on the record",
    type: 'object',
    properties: {
      mongodb: { ...DURATION, description: 'MongoDB restore (default 30m)' },
      pvc: { ...DURATION, description: 'PVC restore (default 15m)' },
      'cluster-state': { ...DURATION, description: 'cluster-state restore (default 45m)' },
      secrets: { ...DURATION, description: 'secrets from Key Vault (default: none)' },
      total: { ...DURATION, description: 'the whole recovery (default 90m)' },
    },
    additionalProperties: false,
  },
};

/** `recover.apps`: the application's workloads (scaled by data-only, restarted by full). */
export const RECOVER_APPS_SETTING: ConfigSetting = {
  path: ['recover', 'apps'],
  schema: {
    description: 'workloads of the application: deployment/NAME, statefulset/NAME or NAMESPACE/KIND/NAME',
    type: 'array',
    items: { type: 'string' },
  },
};

/** `recover.smoke-test`: the application's health URL after a recovery. */
export const RECOVER_SMOKE_SETTING: ConfigSetting = {
  path: ['recover', 'smoke-test'],
  schema: {
    description:
      "the smoke test after a recovery: an HTTP GET that must answer 2xx (Rocket.Chat's /api/info)",
    type: 'object',
    properties: {
      url: { type: 'string', description: 'http(s) URL to GET (required)' },
      'expect-field': {
        type: 'string',
        description: 'dot path that must be truthy in the JSON answer (success)',
      },
      timeout: { type: 'number', description: 'seconds per request (default 10)' },
      wait: { type: 'number', description: 'seconds to keep trying (default 120)' },
    },
    additionalProperties: false,
  },
};

/** A config map with kebab-case keys (`expectField` → `expect-field`), {} for anything else. */
export function normalise(obj: unknown): Record<string, unknown> {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return {};
  return Object.fromEntries(
    Object.entries(obj).map(([k, v]) => [
      k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()).replace(/_/g, '-'),
      v,
    ]),
  );
}
