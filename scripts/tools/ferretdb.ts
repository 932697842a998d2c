/**
 * FerretDB v1.24.2: a MongoDB wire-protocol server on SQLite, the real peer the MongoDB tests talk to.
 *
 * Built from the Go module proxy through the module in tools/ferretdb/ (its go.mod names the FerretDB
 * command as a `tool`, go.sum pins every dependency). The module is copied to a scratch directory,
 * vendored, and given FerretDB's `build/version/version.txt`: FerretDB's release process generates that
 * file, and a binary built without it panics at start-up ("Invalid build/version/version.txt"), because
 * since Go 1.24 a tool's build info names FerretDB's own module as the main module.
 */
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT, run, type Tool } from './toolbox.ts';

const VERSION = '1.24.2';
const PKG = 'github.com/FerretDB/FerretDB/cmd/ferretdb';

export const ferretdb: Tool = {
  name: 'ferretdb',
  version: VERSION,
  files: ['ferretdb'],
  async install(dir: string): Promise<void> {
    const work = await mkdtemp(path.join(tmpdir(), 'lifeboat-ferretdb-build-'));
    try {
      for (const f of ['go.mod', 'go.sum']) await cp(path.join(PROJECT_ROOT, 'tools/ferretdb', f), path.join(work, f));
      const env = { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false' };
      await run('go', ['mod', 'vendor'], { cwd: work, env, quiet: true });
      await writeFile(path.join(work, 'vendor/github.com/FerretDB/FerretDB/build/version/version.txt'), `v${VERSION}\n`);
      await run('go', ['build', '-mod=vendor', '-trimpath', '-o', path.join(dir, 'ferretdb'), PKG], { cwd: work, env });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
};
