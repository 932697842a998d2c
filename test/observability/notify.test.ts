/* eslint-disable @typescript-eslint/no-explicit-any -- payloads and CLI JSON are untyped in these tests */
/**
 * Notifications against a local HTTP receiver (a real server on a real socket): each channel's payload
 * shape, retries (503 twice, then 200; 429 with Retry-After), the per-request timeout, on/scope/layer
 * filters, size limits, deduplication across two CLI processes, and `lifeboat notify test`.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeEvent, type LifeboatEvent } from '../../src/core/events.ts';
import type { RepositoryAccess } from '../../src/observability/audit.ts';
import { channelsFrom, type Channel } from '../../src/observability/notify/config.ts';
import { notifySink, payloadFor, send } from '../../src/observability/notify/dispatcher.ts';
import { messageFor } from '../../src/observability/notify/message.ts';
import { runCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';

interface Received {
  path: string;
  body: any;
}

/** Answers per path: a list of statuses (with headers) consumed in order, then 200; `hang` never answers. */
class Receiver {
  server!: http.Server;
  url = '';
  received: Received[] = [];
  script = new Map<string, { status: number; headers?: Record<string, string> }[]>();
  hang = new Set<string>();
  private sockets = new Set<net.Socket>();

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let data = '';
      req.on('data', (d) => (data += d));
      req.on('end', () => {
        const p = req.url ?? '/';
        this.received.push({ path: p, body: JSON.parse(data) });
        if (this.hang.has(p)) return;
        const next = this.script.get(p)?.shift();
        res.writeHead(next?.status ?? 200, next?.headers ?? {});
        res.end(next && next.status >= 400 ? 'try later' : 'ok');
      });
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }
  at(p: string): Received[] {
    return this.received.filter((r) => r.path === p);
  }
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

const rx = new Receiver();
let work: TempDir;
const noRepo: RepositoryAccess = async () => ({ missing: 'none in this test', quiet: true });

function event(over: Partial<Parameters<typeof makeEvent>[0]> = {}): LifeboatEvent {
  const t = new Date('2026-12-02T02:00:00Z');
  return makeEvent({
    operation: 'mongodb backup',
    effect: 'change',
    layer: 'mongodb',
    result: 'failure',
    exitCode: 1,
    startedAt: t,
    finishedAt: new Date(t.getTime() + 1500),
    repository: 'azure://acct/backups',
    actor: 'lifeboat-sa',
    host: 'backup-pod',
    error: { code: 'UNREACHABLE', message: 'cannot reach mongodb://rocketchat-mongodb:27017' },
    ...over,
  });
}

function channel(name: string, type: Channel['type'], over: Record<string, unknown> = {}): Channel {
  return channelsFrom({ channels: [{ name, type, 'url-env': `URL_${name}`, ...over }] })[0];
}
const envFor = (...names: string[]) =>
  Object.fromEntries(names.map((n) => [`URL_${n}`, `${rx.url}/${n}`])) as NodeJS.ProcessEnv;

before(async () => {
  await rx.start();
  work = await tempDir('lifeboat-notify-');
});
after(async () => {
  await rx.stop();
  await work?.cleanup();
});

describe('payload shapes, checked by the receiver', () => {
  test('each channel gets its own shape', async () => {
    const channels = [
      channel('slack', 'slack'),
      channel('rc', 'rocketchat'),
      channel('teams', 'teams'),
      channel('am', 'json'),
    ];
    const sink = notifySink({ channels, env: envFor('slack', 'rc', 'teams', 'am'), access: noRepo });
    await sink.deliver(event());
    const slack = rx.at('/slack')[0].body;
    assert.equal(typeof slack.text, 'string');
    assert.match(slack.text, /mongodb backup failed/);
    assert.ok(Array.isArray(slack.blocks));
    assert.equal(slack.blocks[0].type, 'header');
    assert.ok(slack.blocks.some((b: any) => b.type === 'section' && /UNREACHABLE/.test(b.text.text)));

    const rc = rx.at('/rc')[0].body;
    assert.equal(typeof rc.text, 'string');
    assert.equal(rc.attachments.length, 1);
    assert.equal(rc.attachments[0].color, '#d00000');
    assert.ok(rc.attachments[0].fields.some((f: any) => f.title === 'Layer' && f.value === 'mongodb'));

    const teams = rx.at('/teams')[0].body;
    assert.equal(teams.type, 'message');
    assert.equal(teams.attachments[0].contentType, 'application/vnd.microsoft.card.adaptive');
    assert.equal(teams.attachments[0].content.type, 'AdaptiveCard');
    assert.ok(teams.attachments[0].content.body.some((b: any) => b.type === 'FactSet'));

    const am = rx.at('/am')[0].body;
    assert.equal(am.version, '4');
    assert.equal(am.status, 'firing');
    assert.equal(am.receiver, 'am');
    assert.equal(am.alerts.length, 1);
    assert.equal(am.alerts[0].status, 'firing');
    assert.equal(am.alerts[0].labels.alertname, 'LifeboatCommandFailed');
    assert.equal(am.alerts[0].labels.layer, 'mongodb');
    assert.equal(am.alerts[0].labels.code, 'UNREACHABLE');
    assert.match(am.alerts[0].annotations.summary, /mongodb backup failed/);
    assert.equal(am.alerts[0].startsAt, '2026-12-02T02:00:00.000Z');
    assert.equal(am.lifeboat.operation, 'mongodb backup');

    // A success resolves the alert.
    const ok = payloadFor(channel('am', 'json'), messageFor(event({ result: 'success', error: undefined })));
    assert.equal(ok.status, 'resolved');
  });

  test('payloads stay within each channel’s limits, cut with an ellipsis', () => {
    const huge = event({ error: { code: 'INTERNAL', message: 'x'.repeat(200_000) } });
    const m = messageFor(huge);
    const slack = payloadFor(channel('s', 'slack'), m) as any;
    assert.ok(slack.text.length <= 4000);
    assert.ok(slack.text.endsWith('…'));
    for (const b of slack.blocks) if (b.type === 'section') assert.ok(b.text.text.length <= 3000);
    assert.ok(slack.blocks[0].text.text.length <= 150);
    const rc = payloadFor(channel('r', 'rocketchat'), m) as any;
    assert.ok(rc.text.length <= 5000);
    assert.ok(rc.attachments[0].text.length <= 5000);
    assert.ok(rc.attachments[0].text.endsWith('…'));
    const teams = payloadFor(channel('t', 'teams'), m);
    assert.ok(Buffer.byteLength(JSON.stringify(teams)) <= 28_000);
    assert.ok(JSON.stringify(teams).includes('…'));
    const am = payloadFor(channel('a', 'json'), m) as any;
    assert.ok(am.alerts[0].annotations.description.length <= 4096);
  });
});

describe('delivery', () => {
  test('503 twice, then 200: delivered on the third attempt', async () => {
    rx.script.set('/retry', [{ status: 503 }, { status: 503 }]);
    const r = await send(channel('retry', 'slack'), messageFor(event()), envFor('retry'));
    assert.equal(r.ok, true, r.error);
    assert.equal(r.attempts, 3);
    assert.equal(rx.at('/retry').length, 3);
  });

  test('429 with Retry-After is honoured, then delivered', async () => {
    rx.script.set('/throttled', [{ status: 429, headers: { 'retry-after': '1' } }]);
    const r = await send(channel('throttled', 'rocketchat'), messageFor(event()), envFor('throttled'));
    assert.equal(r.ok, true, r.error);
    assert.equal(r.attempts, 2);
  });

  test('a 4xx other than 429 is final; retries run out on 5xx', async () => {
    rx.script.set('/gone', [{ status: 404 }]);
    const gone = await send(channel('gone', 'slack'), messageFor(event()), envFor('gone'));
    assert.equal(gone.ok, false);
    assert.equal(gone.attempts, 1);
    assert.match(gone.error!, /HTTP 404/);
    rx.script.set('/down', [{ status: 500 }, { status: 500 }]);
    const down = await send(channel('down', 'slack', { retries: 1 }), messageFor(event()), envFor('down'));
    assert.equal(down.ok, false);
    assert.equal(down.attempts, 2);
    assert.equal(down.status, 500);
  });

  test('a receiver that never answers times out; a refused connection is reported', async () => {
    rx.hang.add('/hang');
    const r = await send(
      channel('hang', 'teams', { timeout: '300ms', retries: 0 }),
      messageFor(event()),
      envFor('hang'),
    );
    assert.equal(r.ok, false);
    assert.match(r.error!, /no answer within 300 ms/);
    const refused = await send(channel('x', 'json', { retries: 0 }), messageFor(event()), {
      URL_x: 'http://127.0.0.1:1/hook',
    });
    assert.equal(refused.ok, false);
    assert.match(refused.error!, /connection failed/);
    assert.doesNotMatch(refused.error!, /127\.0\.0\.1:1\/hook/, 'the URL is a credential: never in an error');
  });

  test('a failing channel makes the sink throw one error naming it (the bus turns it into a warning)', async () => {
    rx.script.set('/bad', [{ status: 400 }]);
    const sink = notifySink({
      channels: [channel('bad', 'slack'), channel('good', 'slack')],
      env: envFor('bad', 'good'),
      access: noRepo,
    });
    const before = rx.at('/good').length;
    await assert.rejects(sink.deliver(event()), /notification not sent to bad \(HTTP 400/);
    assert.equal(rx.at('/good').length, before + 1, 'the other channel still got it');
  });

  test('a missing URL variable is a channel error naming the variable, not a crash', async () => {
    const r = await send(channel('nourl', 'slack'), messageFor(event()), {});
    assert.equal(r.ok, false);
    assert.match(r.error!, /environment variable URL_nourl is empty or not set/);
  });
});

describe('filters', () => {
  test('on: failure | success | always; scope run; layers', async () => {
    const channels = [
      channel('f', 'json'),
      channel('s', 'json', { on: 'success' }),
      channel('a', 'json', { on: 'always' }),
      channel('run', 'json', { on: 'always', scope: 'run' }),
      channel('files', 'json', { on: 'always', layers: ['files'] }),
    ];
    const sink = notifySink({ channels, env: envFor('f', 's', 'a', 'run', 'files'), access: noRepo });
    const count = () =>
      Object.fromEntries(['f', 's', 'a', 'run', 'files'].map((n) => [n, rx.at(`/${n}`).length]));
    await sink.deliver(event());
    assert.deepEqual(count(), { f: 1, s: 0, a: 1, run: 0, files: 0 });
    await sink.deliver(
      event({ result: 'success', error: undefined, layer: 'files', operation: 'files backup' }),
    );
    assert.deepEqual(count(), { f: 1, s: 1, a: 2, run: 0, files: 1 });
    await sink.deliver(
      event({
        operation: 'pipeline run',
        layer: undefined,
        runId: 'run-20261202',
        result: 'partial',
        details: { 'stage.backup-mongodb': 'success', 'stage.backup-files': 'failure' },
      }),
    );
    assert.deepEqual(count(), { f: 2, s: 1, a: 3, run: 1, files: 1 });
    const run = rx.at('/run')[0].body;
    assert.equal(run.alerts[0].labels.operation, 'pipeline run');
    assert.match(run.alerts[0].annotations.description, /stage\.backup-files: failure/);
  });
});

describe('through the CLI', () => {
  let env: NodeJS.ProcessEnv;
  let cfg: string;
  before(async () => {
    cfg = path.join(work.path, 'lifeboat.yaml');
    await writeFile(path.join(work.path, 'slack-url'), `${rx.url}/cli-slack\n`);
    await writeFile(
      cfg,
      [
        'notify:',
        '  channels:',
        '    - name: ops-slack',
        '      type: slack',
        '      url-file: ' + path.join(work.path, 'slack-url'),
        '    - name: ops-json',
        '      type: json',
        '      url-env: OPS_JSON_URL',
        '      on: always',
        '      dedup-window: 0',
        '',
      ].join('\n'),
    );
    env = {
      LIFEBOAT_CONFIG: cfg,
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'notify test',
      LIFEBOAT_KEYSTORE: 'passphrase',
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
      OPS_JSON_URL: `${rx.url}/cli-json`,
    };
    const init = await runCli(['init'], { env, cwd: work.path });
    assert.equal(init.code, 0, init.stderr);
  });

  test('the same failure twice (two processes) is sent once per dedup window; on: always still sends', async () => {
    const slackBefore = rx.at('/cli-slack').length;
    const jsonBefore = rx.at('/cli-json').length;
    for (let i = 0; i < 2; i++) {
      const r = await runCli(['files', 'restore', 'deadbeef', '--target', path.join(work.path, 't')], {
        env,
        cwd: work.path,
      });
      assert.equal(r.code, 1);
      assert.doesNotMatch(r.stderr, /notification not sent/, r.stderr);
    }
    const slack = rx.at('/cli-slack').slice(slackBefore);
    assert.equal(slack.length, 1, 'deduplicated across processes');
    assert.match(slack[0].body.text, /files restore failed: .*NOT_FOUND/);
    assert.equal(rx.at('/cli-json').length - jsonBefore, 2, 'on: always with dedup-window 0: both');
  });

  test('a failing channel is a warning; the command keeps its exit code', async () => {
    rx.script.set('/cli-json', [{ status: 400 }]);
    const r = await runCli(['check'], { env, cwd: work.path });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /warning: event not delivered to notifications: notification not sent to ops-json \(HTTP 400/,
    );
  });

  test('notify test reports each channel; exit 1 when one fails; --channel picks one', async () => {
    const ok = await runCli(['notify', 'test', '--json'], { env, cwd: work.path });
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(
      ok.json.map((r: any) => [r.channel, r.type, r.ok]),
      [
        ['ops-slack', 'slack', true],
        ['ops-json', 'json', true],
      ],
    );
    assert.match(rx.at('/cli-slack').at(-1)!.body.text, /Lifeboat test message/);

    rx.script.set('/cli-json', [{ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 }]);
    const one = await runCli(['notify', 'test', '--channel', 'ops-json', '--json'], { env, cwd: work.path });
    assert.equal(one.code, 1);
    assert.equal(one.json.length, 1);
    assert.equal(one.json[0].ok, false);
    assert.equal(one.json[0].attempts, 4);
    assert.match(one.json[0].error, /HTTP 500/);

    const human = await runCli(['notify', 'test', '--channel', 'ops-slack'], { env, cwd: work.path });
    assert.equal(human.code, 0);
    assert.match(human.stdout, /ops-slack\s+slack\s+sent\s+200/);

    const unknown = await runCli(['notify', 'test', '--channel', 'nope'], { env, cwd: work.path });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no channel named "nope" — channels: ops-slack, ops-json/);
  });

  test('a bad notify section is a config error naming the path', async () => {
    const bad = path.join(work.path, 'bad.yaml');
    await writeFile(
      bad,
      'notify:\n  channels:\n    - name: x\n      type: pager\n      url: https://inline\n',
    );
    const r = await runCli(['notify', 'test'], { env: { ...env, LIFEBOAT_CONFIG: bad }, cwd: work.path });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /notify\.channels\[0\]/);
  });
});
