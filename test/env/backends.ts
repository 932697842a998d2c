/**
 * The storage backends every repository-level test runs against: one list, so a new backend gets the
 * whole suite (round trip, dedup, corruption, interrupted backup, locks, prune) by adding one entry.
 */
import path from 'node:path';
import { tempDir } from './index.ts';

export interface BackendUnderTest {
  name: string;
  /** Sets up an empty location; returns its URL, extra environment for the CLI, and a cleanup. */
  create(): Promise<{ url: string; env: NodeJS.ProcessEnv; cleanup(): Promise<void> }>;
}

export const BACKENDS: BackendUnderTest[] = [
  {
    name: 'local',
    async create() {
      const dir = await tempDir('lifeboat-repo-');
      return { url: path.join(dir.path, 'repo'), env: {}, cleanup: dir.cleanup };
    },
  },
];
