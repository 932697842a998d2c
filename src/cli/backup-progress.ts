/** A progress bar that follows a backup session's byte counters. */
import type { BackupSession } from '../core/repository/model.ts';
import type { Output } from './output.ts';
import { formatBytes } from './output.ts';

export function followBackup(out: Output, session: BackupSession, label: string, total?: number): () => void {
  const bar = out.progress(label, total);
  const timer = setInterval(
    () => bar.update(session.progress.bytesProcessed, `new ${formatBytes(session.progress.bytesAdded)}`),
    200,
  );
  timer.unref();
  return () => {
    clearInterval(timer);
    bar.finish();
  };
}
