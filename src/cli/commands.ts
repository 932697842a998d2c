/** Every CLI command in `lifeboat help` order (one file per command), and the global options. */
import type { Command, OptionSpec } from './command.ts';
import { auditListCommand } from './cmd_audit_list.ts';
import { auditVerifyCommand } from './cmd_audit_verify.ts';
import { checkCommand } from './cmd_check.ts';
import { copyCommand } from './cmd_copy.ts';
import { notifyTestCommand } from './cmd_notify_test.ts';
import { pvcRestoreCommand } from './cmd_pvc_restore.ts';
import { pvcSnapshotCommand } from './cmd_pvc_snapshot.ts';
import { clusterStateBackupCommand } from './cmd_cluster_state_backup.ts';
import { clusterStateRestoreCommand } from './cmd_cluster_state_restore.ts';
import { filesBackupCommand } from './cmd_files_backup.ts';
import { filesRestoreCommand } from './cmd_files_restore.ts';
import { forgetCommand } from './cmd_forget.ts';
import { initCommand } from './cmd_init.ts';
import { integrityCheckCommand } from './cmd_integrity_check.ts';
import { mongodbBackupCommand } from './cmd_mongodb_backup.ts';
import { mongodbExportCommand } from './cmd_mongodb_export.ts';
import { mongodbImportCommand } from './cmd_mongodb_import.ts';
import { mongodbPitrRunCommand } from './cmd_mongodb_pitr_run.ts';
import { mongodbPitrStatusCommand } from './cmd_mongodb_pitr_status.ts';
import { mongodbRestoreCommand } from './cmd_mongodb_restore.ts';
import { keyAddCommand, keyListCommand, keyRemoveCommand, keyRotateCommand } from './cmd_key.ts';
import { pruneCommand } from './cmd_prune.ts';
import { repairIndexCommand } from './cmd_repair_index.ts';
import { repairSnapshotsCommand } from './cmd_repair_snapshots.ts';
import { secretsBackupCommand } from './cmd_secrets_backup.ts';
import { secretsSyncCommand } from './cmd_secrets_sync.ts';
import { showCommand } from './cmd_show.ts';
import { snapshotsCommand } from './cmd_snapshots.ts';
import { statsCommand } from './cmd_stats.ts';
import { metricsCommand } from './cmd_metrics.ts';
import { serveCommand } from './cmd_serve.ts';
import { terraformBackupCommand } from './cmd_terraform_backup.ts';
import { terraformRestoreCommand } from './cmd_terraform_restore.ts';
import { unlockCommand } from './cmd_unlock.ts';
import { validateCommand } from './cmd_validate.ts';
import { healthCommand } from './cmd_health.ts';
import { recoverCommand } from './cmd_recover.ts';
import { pipelineRunCommand } from './cmd_pipeline_run.ts';
import { pipelineStatusCommand } from './cmd_pipeline_status.ts';
import { pipelineHistoryCommand } from './cmd_pipeline_history.ts';

export const COMMANDS: Command<never>[] = [
  initCommand,
  filesBackupCommand,
  filesRestoreCommand,
  mongodbBackupCommand,
  mongodbRestoreCommand,
  mongodbExportCommand,
  mongodbImportCommand,
  mongodbPitrRunCommand,
  mongodbPitrStatusCommand,
  clusterStateBackupCommand,
  clusterStateRestoreCommand,
  secretsBackupCommand,
  secretsSyncCommand,
  pvcSnapshotCommand,
  pvcRestoreCommand,
  terraformBackupCommand,
  terraformRestoreCommand,
  snapshotsCommand,
  showCommand,
  checkCommand,
  validateCommand,
  integrityCheckCommand,
  pipelineRunCommand,
  pipelineStatusCommand,
  pipelineHistoryCommand,
  recoverCommand,
  healthCommand,
  forgetCommand,
  pruneCommand,
  copyCommand,
  repairIndexCommand,
  repairSnapshotsCommand,
  statsCommand,
  metricsCommand,
  serveCommand,
  keyListCommand,
  keyAddCommand,
  keyRotateCommand,
  keyRemoveCommand,
  unlockCommand,
  auditListCommand,
  auditVerifyCommand,
  notifyTestCommand,
] as Command<never>[];

/** Options every command takes (main.ts merges them with the command's own). */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  repo: {
    type: 'string',
    arg: 'URL',
    env: 'LIFEBOAT_REPO',
    default: './lifeboat-repo',
    description: 'repository location (path, file://, azure://, s3://)',
  },
  config: {
    type: 'string',
    arg: 'FILE',
    env: 'LIFEBOAT_CONFIG',
    description: 'YAML config file (default ./lifeboat.yaml when present)',
  },
  keystore: {
    type: 'string',
    arg: 'SPEC',
    env: 'LIFEBOAT_KEYSTORE',
    description: 'passphrase | keyfile[:PATH] | azurekv://VAULT/NAME | azurekv-key://VAULT/KEY',
  },
  'password-file': {
    type: 'string',
    arg: 'FILE',
    env: 'LIFEBOAT_PASSWORD_FILE',
    description: 'read the passphrase from FILE (else LIFEBOAT_PASSWORD)',
  },
  'key-file': {
    type: 'string',
    arg: 'FILE',
    env: 'LIFEBOAT_KEY_FILE',
    description: 'local key file (default ~/.config/lifeboat/default.key)',
  },
  json: { type: 'boolean', env: 'LIFEBOAT_JSON', description: 'print one JSON document on stdout' },
  quiet: { type: 'boolean', short: 'q', env: 'LIFEBOAT_QUIET', description: 'print only errors' },
  verbose: {
    type: 'boolean',
    short: 'v',
    env: 'LIFEBOAT_VERBOSE',
    description: 'log what happens (LIFEBOAT_LOG_FORMAT=json for JSON lines)',
  },
  help: { type: 'boolean', short: 'h', description: 'show help' },
};
