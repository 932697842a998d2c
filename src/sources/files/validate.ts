/**
 * `lifeboat validate --type files`: counts of what the newest files snapshot holds (files, directories,
 * symlinks, bytes); a snapshot with no file says so (an incomplete one is a warning of every layer).
 */
import type { LayerValidator } from '../../operations/validate.ts';

export const filesValidator: LayerValidator = {
  layer: 'files',
  appliesTo: 'files',
  async validate(ctx) {
    const snap = ctx.snapshot!;
    const count = (kind: string) => snap.items.filter((i) => i.kind === kind).length;
    const files = count('file');
    const bytes = snap.items.reduce((n, i) => n + (i.kind === 'file' ? i.size : 0), 0);
    if (!files) ctx.warn('metadata', 'the snapshot holds no file');
    ctx.note(`${files} file(s), ${count('dir')} dir(s), ${count('symlink')} symlink(s), ${bytes} bytes`);
  },
};
