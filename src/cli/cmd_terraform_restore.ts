import type { StateSource, TerraformRestoreResult } from '../sources/terraform/terraform.ts';
import { str, usageError, type Command } from './command.ts';
import { openRepository } from './repo.ts';
import { AZURERM_OPTIONS, azurermLocation } from './terraform-options.ts';

export const terraformRestoreCommand: Command<TerraformRestoreResult> = {
  path: ['terraform', 'restore'],
  summary: 'write Terraform state from a terraform snapshot into a directory or back to its azurerm blobs',
  usage: '[SNAPSHOT] (--target DIR | --to-blob)',
  options: {
    target: { type: 'string', arg: 'DIR', description: 'write the states into this working directory' },
    'to-blob': {
      type: 'boolean',
      description: 'write the states back to the azurerm blobs (where they came from, or --azurerm-*)',
    },
    workspace: {
      type: 'string',
      arg: 'NAME',
      description: 'only this workspace (`default` for the default one)',
    },
    from: {
      type: 'string',
      arg: 'SOURCE',
      description: 'with --target: take the local or the azurerm states when the snapshot has both',
    },
    force: {
      type: 'boolean',
      flagOnly: true,
      description:
        'write over a different lineage, a higher serial or (--to-blob) a held lock (breaks the lease)',
    },
    ...AZURERM_OPTIONS,
  },
  help: [
    "SNAPSHOT is an id, a unique id prefix, `latest` (default) or a YYYYMMDD_HHMMSS timestamp. Terraform's",
    '`state push` rule applies to every workspace: the current state at the target must have the same',
    "lineage and a serial no higher than the snapshot's; --to-blob also refuses a leased (locked) blob. If",
    'any workspace is refused, nothing is written. Blob writes carry If-Match on the ETag that was compared,',
    'so a Terraform write in between is not overwritten. See docs/terraform.md.',
  ].join('\n'),
  async run(ctx, values, args) {
    const { restoreTerraform } = await import('../sources/terraform/terraform.ts');
    const target = str(values.target);
    const toBlob = Boolean(values['to-blob']);
    if (!target === !toBlob) throw usageError('give --target DIR or --to-blob (one of them)');
    if (args.length > 1) throw usageError('give one SNAPSHOT');
    const from = str(values.from);
    if (from !== undefined && from !== 'local' && from !== 'azurerm')
      throw usageError('--from must be local or azurerm');
    const azurerm = azurermLocation(values);
    if (azurerm && !toBlob)
      throw usageError('--azurerm-* options name a restore destination: use them with --to-blob');
    const repo = await openRepository(ctx, { lock: 'shared' });
    const ref = args[0] ?? 'latest';
    const snapshot = await repo.resolveSnapshot(ref, ref === 'latest' ? { type: 'terraform' } : {});
    if (snapshot.type !== 'terraform')
      throw usageError(
        `snapshot ${snapshot.id.slice(0, 8)} is a ${snapshot.type} snapshot`,
        'give a terraform snapshot',
      );
    return restoreTerraform(repo, snapshot, {
      target,
      toBlob,
      azurerm,
      from: from as StateSource | undefined,
      workspace: str(values.workspace),
      force: Boolean(values.force),
      env: ctx.env,
    });
  },
  human(r, out) {
    for (const w of r.workspaces)
      out.line(
        `${w.workspace}: serial ${w.serial ?? '(empty)'} written to ${w.destination}` +
          (w.previousSerial !== undefined ? ` (was serial ${w.previousSerial})` : '') +
          (w.overridden ? ` — forced over: ${w.overridden}` : ''),
      );
    for (const f of r.configWritten) out.line(`${f}: written`);
    for (const w of r.emptySkipped) out.line(`${w}: the capture was empty (no state yet), nothing written`);
    for (const f of r.configKept) out.line(`${f}: kept the one already there (--force replaces it)`);
  },
  effect: 'change',
  layer: 'terraform',
  event: (r) => ({
    snapshot: r.snapshot,
    items: r.workspaces.length,
    details: {
      workspaces: r.workspaces.length,
      forced: r.workspaces.filter((w) => w.overridden).length,
      configWritten: r.configWritten.length,
      emptySkipped: r.emptySkipped.length,
    },
  }),
};
