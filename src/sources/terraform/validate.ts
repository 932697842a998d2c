/**
 * `lifeboat validate --type terraform`: each captured workspace of the newest snapshot must be sane (its
 * state item present, a lineage with a whole serial when it holds a state), and the captures are
 * compared with each other (checks.ts: a serial that went backwards, a changed lineage, a lock held over
 * 2 h). Those comparisons are warnings that still exit 1 (docs/terraform.md): the backup is sound, but
 * the state it holds needs someone now.
 */
import type { LayerValidator } from '../../operations/validate.ts';
import { terraformFindings } from './checks.ts';
import { capturedWorkspaces } from './terraform.ts';

export const terraformValidator: LayerValidator = {
  layer: 'terraform',
  appliesTo: 'terraform',
  async validate(ctx) {
    const snap = ctx.snapshot!;
    const workspaces = capturedWorkspaces(snap);
    for (const ws of workspaces) {
      const label = `${ws.location} workspace ${ws.workspace}`;
      if (!snap.items.some((i) => i.name === ws.item))
        ctx.fail('state', `${label}: its state item ${ws.item} is not in the snapshot`);
      if (ws.lineage !== undefined && (typeof ws.lineage !== 'string' || !ws.lineage))
        ctx.fail('state', `${label}: empty lineage recorded`);
      if (ws.lineage && !(Number.isInteger(ws.serial) && (ws.serial ?? -1) >= 0))
        ctx.fail('state', `${label}: serial ${String(ws.serial)} is not a whole number`);
    }
    for (const f of terraformFindings(ctx.history)) ctx.warn('state', f.message, true);
    ctx.note(
      workspaces.length
        ? `${workspaces.length} workspace(s): ${workspaces.map((w) => `${w.workspace}${w.serial !== undefined ? ` serial ${w.serial}` : ''}`).join(', ')}`
        : `${snap.items.length} item(s), no workspace recorded`,
    );
  },
};
