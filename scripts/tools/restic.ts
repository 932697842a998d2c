/**
 * restic v0.18.1, the yardstick of `npm run bench` (never of `npm test`, so it is not in registry.ts):
 * the bench backs up, restores and checks the same data with restic and with Lifeboat in one run and
 * prints the ratios. Built from the Go module proxy with `go install …/cmd/restic@v0.18.1` (a cold build
 * is about 2 minutes here) and cached per machine like the test tools.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { run, type Tool } from './toolbox.ts';

const VERSION = 'v0.18.1';

export const restic: Tool = {
  name: 'restic',
  version: VERSION.slice(1),
  files: ['bin/restic'],
  async install(dir: string): Promise<void> {
    const bin = path.join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    await run('go', ['install', '-trimpath', '-ldflags=-s -w', `github.com/restic/restic/cmd/restic@${VERSION}`], {
      env: { ...process.env, GOBIN: bin, CGO_ENABLED: '0', GOFLAGS: '-p=2 -buildvcs=false' },
    });
  },
};
