// One item backed up in its own snapshot, for in-process tests of the repository.
import { startBackup } from '../../src/core/repository/backup.ts';
import type { Item } from '../../src/core/repository/model.ts';
import type { Repository } from '../../src/core/repository/repository.ts';

/** Backs up `data` as file item `name`, handed over whole (a copy of its own), and commits it. */
export async function backUpOne(repo: Repository, name: string, data: Buffer): Promise<Item> {
  const session = await startBackup(repo);
  const writer = session.newItem({ name, kind: 'file' }, 'file');
  await writer.write(Buffer.from(data));
  const item = await writer.finish();
  await session.commit({ type: 'files', items: [item] });
  return item;
}
