import type { WorkspaceCapture } from '../sources/terraform/terraform.ts';
import { list, str, type Command } from './command.ts';
import { formatBytes } from './output.ts';
import { openRepository } from './repo.ts';
import { AZURERM_OPTIONS, azurermLocation } from './terraform-options.ts';

interface TerraformBackupOutput {
  id: string;
  timestamp: string;
  items: number;
  bytesAdded: number;
  workspaces: WorkspaceCapture[];
  configFiles: string[];
}

export const terraformBackupCommand: Command<TerraformBackupOutput> = {
  path: ['terraform', 'backup'],
  summary: 'capture Terraform state (local files and/or an azurerm backend) into one terraform snapshot',
  options: {
    dir: {
      type: 'string',
      arg: 'DIR',
      description: 'Terraform working directory (default `.` unless only --azurerm-* is given)',
    },
    ...AZURERM_OPTIONS,
    tag: { type: 'string', multiple: true, arg: 'TAG', description: 'tag the snapshot (repeatable)' },
  },
  help: [
    'From DIR: terraform.tfstate, terraform.tfstate.d/<ws>/terraform.tfstate, .terraform/terraform.tfstate',
    '(backend config, may hold credentials) and .terraform/environment. From azurerm: the blob KEY and every',
    'KEY`env:`WORKSPACE blob, read without taking or breaking the lease Terraform holds; whether each was',
    'locked, and its lock info, are recorded. Lineage and serial of each workspace go into the snapshot',
    'meta (never resource values). Azure credentials as for azure:// repositories (docs/storage.md).',
    'See docs/terraform.md.',
  ].join('\n'),
  async run(ctx, values) {
    const { backupTerraform } = await import('../sources/terraform/terraform.ts');
    const azurerm = azurermLocation(values);
    const dir = str(values.dir) ?? (azurerm ? undefined : '.');
    const repo = await openRepository(ctx);
    const r = await backupTerraform(repo, { dir, azurerm, tags: list(values.tag), env: ctx.env });
    for (const w of r.workspaces)
      if (w.leaseState === 'leased')
        ctx.warn(
          `${w.location} workspace ${w.workspace} was locked at capture (lock ${w.lock && 'ID' in w.lock ? w.lock.ID : 'info missing'}); its state was read without breaking the lease`,
        );
    return {
      id: r.snapshot.id,
      timestamp: r.snapshot.timestamp,
      items: r.snapshot.items.length,
      bytesAdded: r.snapshot.summary.bytesAdded,
      workspaces: r.workspaces,
      configFiles: r.configFiles,
    };
  },
  human(r, out) {
    out.line(
      `snapshot ${r.id.slice(0, 8)} (${r.timestamp}) saved: ${r.workspaces.length} workspace(s), ${r.items} items, ${formatBytes(r.bytesAdded)} added`,
    );
    out.table(
      r.workspaces.map((w) => [
        w.source,
        w.workspace,
        w.serial !== undefined ? String(w.serial) : '(empty)',
        w.lineage ?? '',
        w.leaseState === 'leased' ? 'locked' : '',
      ]),
      ['SOURCE', 'WORKSPACE', 'SERIAL', 'LINEAGE', 'LOCK'],
    );
  },
  effect: 'change',
  layer: 'terraform',
  event: (r) => {
    const locked = r.workspaces.filter((w) => w.leaseState === 'leased').length;
    return {
      snapshot: r.id,
      bytesAdded: r.bytesAdded,
      items: r.items,
      ...(locked ? { result: 'warning' as const } : {}),
      details: { workspaces: r.workspaces.length, locked, configFiles: r.configFiles.length },
    };
  },
};
