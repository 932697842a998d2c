/** Every CLI command, in the order `lifeboat help` lists them. One file per command. */
import type { Command } from './command.ts';
import { checkCommand } from './cmd_check.ts';
import { pvcRestoreCommand } from './cmd_pvc_restore.ts';
import { pvcSnapshotCommand } from './cmd_pvc_snapshot.ts';
import { clusterStateBackupCommand } from './cmd_cluster_state_backup.ts';
import { clusterStateRestoreCommand } from './cmd_cluster_state_restore.ts';
import { filesBackupCommand } from './cmd_files_backup.ts';
import { filesRestoreCommand } from './cmd_files_restore.ts';
import { forgetCommand } from './cmd_forget.ts';
import { initCommand } from './cmd_init.ts';
import { mongodbBackupCommand } from './cmd_mongodb_backup.ts';
import { mongodbExportCommand } from './cmd_mongodb_export.ts';
import { mongodbImportCommand } from './cmd_mongodb_import.ts';
import { mongodbRestoreCommand } from './cmd_mongodb_restore.ts';
import { keyAddCommand, keyListCommand, keyRemoveCommand, keyRotateCommand } from './cmd_key.ts';
import { pruneCommand } from './cmd_prune.ts';
import { repairIndexCommand } from './cmd_repair_index.ts';
import { repairSnapshotsCommand } from './cmd_repair_snapshots.ts';
import { showCommand } from './cmd_show.ts';
import { snapshotsCommand } from './cmd_snapshots.ts';
import { statsCommand } from './cmd_stats.ts';
import { unlockCommand } from './cmd_unlock.ts';
import { validateCommand } from './cmd_validate.ts';

export const COMMANDS: Command<never>[] = [
  initCommand,
  filesBackupCommand,
  filesRestoreCommand,
  mongodbBackupCommand,
  mongodbRestoreCommand,
  mongodbExportCommand,
  mongodbImportCommand,
  clusterStateBackupCommand,
  clusterStateRestoreCommand,
  pvcSnapshotCommand,
  pvcRestoreCommand,
  snapshotsCommand,
  showCommand,
  checkCommand,
  validateCommand,
  forgetCommand,
  pruneCommand,
  repairIndexCommand,
  repairSnapshotsCommand,
  statsCommand,
  keyListCommand,
  keyAddCommand,
  keyRotateCommand,
  keyRemoveCommand,
  unlockCommand,
] as Command<never>[];
