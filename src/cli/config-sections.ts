/**
 * Settings in lifeboat.yaml that are not command flags: structured values such as the pipeline's stage
 * list or the notification channels. Each is declared once here with its JSON Schema (draft-07); the
 * config check (config-schema.ts) validates the value against it and the published schema
 * (docs/lifeboat.schema.json) embeds it, so the two cannot disagree.
 *
 * To add one: a module next to its feature exports a `ConfigSetting`, and this list names it.
 */
import { NOTIFY_CHANNELS_SETTING } from '../observability/notify/config.ts';

export interface ConfigSetting {
  /** Section words then the key: ['pipeline', 'stages'] is `pipeline: { stages: … }`. */
  path: string[];
  /** JSON Schema of the value (draft-07: type, properties, required, enum, items, pattern, minimum, …). */
  schema: Record<string, unknown>;
}

export const CONFIG_SETTINGS: ConfigSetting[] = [NOTIFY_CHANNELS_SETTING];
