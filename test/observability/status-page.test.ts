/**
 * The status page in a real browser: `lifeboat serve` on a repository where things went wrong, loaded by
 * Debian's chromium headless; the DOM the browser built is checked for every part of the page, and a
 * screenshot is taken (and kept in the test's directory when LIFEBOAT_KEEP_SCREENSHOT is set, to look at).
 * Chromium is installed by scripts/tools/ensure-tools.ts (scripts/tools/chromium.ts); only when it is
 * absent does this test skip, saying so.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { SYSTEM_CHROMIUM } from '../../scripts/tools/chromium.ts';
import { freePort, tempDir, waitForPort, type TempDir } from '../env/index.ts';
import { spawnCli } from '../env/cli.ts';
import { cliEnv, failingRepo, PASSWORD, type Scenario } from './fixture.ts';

const chromiumMissing = existsSync(SYSTEM_CHROMIUM)
  ? false
  : `chromium is not installed (${SYSTEM_CHROMIUM}): run \`node scripts/tools/ensure-tools.ts chromium\``;

function chromium(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      SYSTEM_CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--hide-scrollbars',
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('status page in chromium', { skip: chromiumMissing }, () => {
  let tmp: TempDir;
  let scenario: Scenario;
  let base: string;
  let serve: ReturnType<typeof spawnCli>;
  before(async () => {
    tmp = await tempDir('lifeboat-status-page-');
    scenario = await failingRepo(path.join(tmp.path, 'repo'));
    const port = await freePort();
    serve = spawnCli(['serve', '--listen', `127.0.0.1:${port}`, '--storage-quota', scenario.quota!], {
      env: cliEnv(scenario.repo),
    });
    serve.stderr!.resume();
    await waitForPort(port);
    base = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    serve?.kill('SIGTERM');
    await tmp?.cleanup();
  });

  test('the browser shows every part: alerts, layers, restore points, storage plot, drills; no secret', async () => {
    const dom = await chromium(['--dump-dom', `${base}/`]);
    assert.equal(dom.code, 0, dom.stderr);
    const html = dom.stdout;
    assert.match(html, /<h1>Lifeboat status<\/h1>/);
    for (const e of scenario.expected)
      assert.ok(html.includes(`data-alert="${e.alert}"`), `alert ${e.alert} shown`);
    assert.doesNotMatch(html, /data-alert="LifeboatRepositoryUnreachable"/);
    for (const layer of ['mongodb', 'files']) assert.match(html, new RegExp(`<tr data-layer="${layer}">`));
    // mongodb's newest backup is 30 h old: shown as stale, with its age.
    assert.match(
      html,
      /<tr data-layer="mongodb"><td>mongodb<\/td><td class="stale"><time [^>]+>[^<]+<\/time> <span class="age">\(30\.\d h ago\)/,
    );
    assert.match(html, /<svg id="storage-plot"[^>]*>/);
    assert.ok((html.match(/<circle /g) ?? []).length >= 4, 'one point per snapshot in the plot');
    assert.match(html, /class="quota"/);
    assert.match(html, /<section id="drills">[\s\S]*class="overbudget"[\s\S]*<\/section>/);
    assert.match(html, /<section id="recoveries">[\s\S]*badge bad">failure/);
    assert.ok(!html.includes(PASSWORD), 'no passphrase on the page');
    assert.doesNotMatch(html, /LIFEBOAT_PASSWORD/);
  });

  test('a screenshot of the page', async () => {
    const png = path.join(tmp.path, 'status.png');
    const shot = await chromium([`--screenshot=${png}`, '--window-size=1200,1400', `${base}/`]);
    assert.equal(shot.code, 0, shot.stderr);
    const data = await readFile(png);
    assert.deepEqual([...data.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    assert.equal(data.readUInt32BE(16), 1200, 'width');
    assert.equal(data.readUInt32BE(20), 1400, 'height');
    assert.ok(data.length > 20_000, `a page with content, not a blank image (${data.length} bytes)`);
    if (process.env.LIFEBOAT_KEEP_SCREENSHOT) await copyFile(png, process.env.LIFEBOAT_KEEP_SCREENSHOT);
  });
});
