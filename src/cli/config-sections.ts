/**
 * Settings in lifeboat.yaml that are not command flags: structured values such as the pipeline's stage
 * list or the notification channels. Each is declared once here with its JSON Schema (draft-07); the
 * config check (config-schema.ts) validates the value against it and the published schema
 * (docs/lifeboat.schema.json) embeds it, so the two cannot disagree.
 *
 * To add one: a module next to its feature exports a `ConfigSetting`, and this list names it.
 */
import { PIPELINE_STAGES_SETTING } from '../operations/pipeline-config.ts';
import { VALIDATE_MAX_AGE_SETTING } from './cmd_validate.ts';
import { RECOVER_APPS_SETTING, RECOVER_BUDGETS_SETTING, RECOVER_SMOKE_SETTING } from './recover-settings.ts';
import { DRILL_BUDGETS_SETTING, DRILL_SMOKE_TEST_SETTING } from '../operations/drill-records.ts';
import { NOTIFY_CHANNELS_SETTING } from '../observability/notify/config.ts';

export interface ConfigSetting {
  /** Section words then the key: ['pipeline', 'stages'] is `pipeline: { stages: … }`. */
  path: string[];
  /** JSON Schema of the value (draft-07: type, properties, required, enum, items, pattern, minimum, …). */
  schema: Record<string, unknown>;
}

export const CONFIG_SETTINGS: ConfigSetting[] = [
  PIPELINE_STAGES_SETTING,
  VALIDATE_MAX_AGE_SETTING,
  RECOVER_BUDGETS_SETTING,
  RECOVER_APPS_SETTING,
  RECOVER_SMOKE_SETTING,
  DRILL_BUDGETS_SETTING,
  DRILL_SMOKE_TEST_SETTING,
  NOTIFY_CHANNELS_SETTING,
];
