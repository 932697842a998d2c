/**
 * Debian's chromium, for the status page's browser test (test/observability/status-page.test.ts loads the
 * page from `lifeboat serve`, takes a screenshot and reads the DOM with `chromium --headless`).
 *
 * A browser cannot come from a language package registry, so this is the one tool that uses the system
 * package manager: `apt-get install chromium` when /usr/bin/chromium is missing (about 2.5 minutes with
 * `apt-get update` on a fresh machine, measured). The tool directory holds a wrapper script, so tests find
 * it like every other tool.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run, type Tool } from './toolbox.ts';

export const SYSTEM_CHROMIUM = '/usr/bin/chromium';

export const chromium: Tool = {
  name: 'chromium',
  version: 'debian',
  files: ['bin/chromium'],
  async install(dir: string): Promise<void> {
    if (!existsSync(SYSTEM_CHROMIUM)) {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      await run('apt-get', ['update', '-qq'], { env, quiet: true });
      await run('apt-get', ['install', '-y', '-qq', 'chromium'], { env, quiet: true });
    }
    await mkdir(path.join(dir, 'bin'), { recursive: true });
    const wrapper = path.join(dir, 'bin', 'chromium');
    await writeFile(wrapper, `#!/bin/sh\nexec ${SYSTEM_CHROMIUM} "$@"\n`);
    await chmod(wrapper, 0o755);
  },
};
