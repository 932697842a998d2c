/**
 * promtool (Prometheus v3, Go module github.com/prometheus/prometheus v0.316.0): the tests check the
 * exporter's output with `promtool check metrics` and the shipped alert rules with `promtool check rules`
 * and `promtool test rules`.
 *
 * Built from the Go module proxy through the module in tools/promtool/ (its go.mod names promtool as a
 * `tool`, go.sum pins every dependency). Prometheus pulls in the service-discovery SDKs of every cloud,
 * so a cold build is long: measured 55 s to download the modules, then 16 min of CPU (64 min wall on 2
 * cores shared with other builds); with a warm Go build cache 45 s. ensureTool caches it per machine.
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { PROJECT_ROOT, run, type Tool } from './toolbox.ts';

const VERSION = 'v0.316.0';
const MODULE_DIR = path.join(PROJECT_ROOT, 'tools', 'promtool');
const PKG = 'github.com/prometheus/prometheus/cmd/promtool';

export const promtool: Tool = {
  name: 'promtool',
  version: VERSION.slice(1),
  files: ['bin/promtool'],
  async install(dir: string): Promise<void> {
    const mod = await readFile(path.join(MODULE_DIR, 'go.mod'), 'utf8');
    if (!mod.includes(`github.com/prometheus/prometheus ${VERSION}`))
      throw new Error(`tools/promtool/go.mod does not require prometheus ${VERSION}: update it and scripts/tools/promtool.ts together`);
    await mkdir(path.join(dir, 'bin'), { recursive: true });
    await run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', path.join(dir, 'bin', 'promtool'), PKG], {
      cwd: MODULE_DIR,
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-p=2 -mod=readonly -buildvcs=false' },
    });
  },
};
