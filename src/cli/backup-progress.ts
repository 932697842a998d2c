/** A progress bar that follows a backup session's byte counters. */
import type { BackupSession } from '../core/repository/model.ts';
import type { Output } from './output.ts';
import { formatBytes } from './output.ts';

export function followBackup(
  out: Output,
  session: BackupSession,
  label: string,
  total?: number,
  /** What the source is doing right now (e.g. which collections are being copied). */
  detail?: () => string,
): () => void {
  const bar = out.progress(label, total);
  const timer = setInterval(() => {
    const extra = detail?.();
    bar.update(
      session.progress.bytesProcessed,
      `new ${formatBytes(session.progress.bytesAdded)}${extra ? ` · ${extra}` : ''}`,
    );
  }, 200);
  timer.unref();
  return () => {
    clearInterval(timer);
    bar.finish();
  };
}
