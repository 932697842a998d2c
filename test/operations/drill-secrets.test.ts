/* eslint-disable @typescript-eslint/no-explicit-any -- API objects and CLI JSON are untyped in these tests */
/**
 * The secrets restore drill (`lifeboat integrity-check --component secrets`) against real peers: etcd +
 * kube-apiserver (test/env/kube.ts; this file plays the namespace controller) and the test Key Vault
 * (test/env/keyvault.ts, a fake over real HTTPS), with a local repository for the drill record. Secrets
 * are backed up with the real CLI (`lifeboat secrets backup`); the drill restores them from the vault
 * into a scratch namespace, reads them back, compares digests, and must leave nothing behind and never
 * show a value.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SecretClient } from '@azure/keyvault-secrets';
import { openKeystore } from '../../src/core/keystore/open.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { openBackend } from '../../src/core/storage/open.ts';
import { listOperations } from '../../src/operations/runner.ts';
import { vaultName } from '../../src/sources/secrets/names.ts';
import { runCli, type CliResult } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { startKeyVault, staticCredential, VALID_TOKEN, type TestKeyVault } from '../env/keyvault.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import { admin, controllerLoop, deleteNamespace, type ControllerLoop } from '../env/kube-controllers.ts';

const NS = 'rocketchat';
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const MONGO_PASSWORD = 'mongo-Pa55word-drill-do-not-print';
const SMTP_PASSWORD = 'smtp-s3cret-drill-do-not-print';
const CHANGED_VALUE = 'changed-behind-lifeboats-back-drill-do-not-print';
const BIG = randomBytes(40 * 1024); // base64 ≈ 55 KB: three Key Vault parts
const VALUES = [MONGO_PASSWORD, SMTP_PASSWORD, CHANGED_VALUE, b64(MONGO_PASSWORD), b64(SMTP_PASSWORD)];

function secret(name: string, data: Record<string, string | Buffer>, extra: Record<string, any> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, ...(extra.metadata ?? {}) },
    type: extra.type ?? 'Opaque',
    ...(extra.immutable ? { immutable: true } : {}),
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

const SECRETS = [
  secret('mongodb-password', { password: MONGO_PASSWORD }),
  secret(
    'rocketchat.smtp-config',
    { SMTP_PASSWORD, 'smtp.user': 'chat@example.org' },
    {
      metadata: {
        labels: { 'app.kubernetes.io/name': 'rocketchat' },
        annotations: { 'example.org/note': 'ünïcode kept' },
      },
    },
  ),
  secret('chat-tls', { 'tls.crt': 'CERT', 'tls.key': 'KEY' }, { type: 'kubernetes.io/tls', immutable: true }),
  secret('ca-bundle', { 'ca.crt': BIG }),
];

describe('secrets restore drill (kube-apiserver + Key Vault)', () => {
  let kube: KubeTestCluster;
  let kv: TestKeyVault;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let loop: ControllerLoop;
  const outputs: string[] = [];
  const cli = async (args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> => {
    const r = await runCli(args, { env: { ...env, ...extra } });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const get = async (p: string) => (await admin(kube).get(p)).body as any;
  const drillNamespaces = async () =>
    ((await get('/api/v1/namespaces')).items as any[])
      .map((n) => n.metadata.name as string)
      .filter((n) => n.startsWith('lifeboat-drill-'));
  // The played namespace controller needs a few of its 100 ms rounds.
  const settled = async (list: () => Promise<string[]>) => {
    let left = await list();
    for (let i = 0; i < 100 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await list();
    }
    return left;
  };
  const records = async () => {
    const repo = await Repository.open(
      await openBackend(env.LIFEBOAT_REPO!),
      await openKeystore({}, { LIFEBOAT_PASSWORD: 'pw' }),
    );
    try {
      return await listOperations(repo, 'drill');
    } finally {
      await repo.close();
    }
  };
  const noValues = async () => {
    const recs = JSON.stringify(await records());
    for (const v of VALUES) {
      for (const out of outputs) assert.ok(!out.includes(v), 'no secret value in stdout/stderr');
      assert.ok(!recs.includes(v), 'no secret value in the drill records');
    }
  };

  before(async () => {
    work = await tempDir('lifeboat-drill-secrets-');
    [kube, kv] = await Promise.all([startKube({ crds: false }), startKeyVault()]);
    env = {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'pw',
      KUBECONFIG: kube.kubeconfigPath,
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
      NODE_EXTRA_CA_CERTS: kv.tls.caFile,
      LIFEBOAT_SECRETS_VAULT: kv.url,
      LIFEBOAT_SECRETS_VAULT_TOKEN: VALID_TOKEN,
    };
    const a = admin(kube);
    await a.post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    for (const s of SECRETS) await a.post(`/api/v1/namespaces/${NS}/secrets`, s);
    loop = controllerLoop(async () => {
      // The namespace controller: a deleted scratch namespace is emptied and goes away.
      for (const ns of (await get('/api/v1/namespaces')).items ?? [])
        if (ns.metadata.deletionTimestamp && ns.metadata.labels?.['lifeboat.io/drill'])
          await deleteNamespace(kube, ns.metadata.name);
    });
    assert.equal((await cli(['init'])).code, 0);
    const b = await cli(['secrets', 'backup', '--namespace', NS, '--json']);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.json.secrets.length, 4);
  });
  after(async () => {
    await loop?.stop().catch(() => {});
    await kube?.stop();
    await kv?.close();
    await work?.cleanup();
  });

  test('restores every Secret into a scratch namespace, verifies its digest, deletes it, records it', async () => {
    // A scratch namespace of a drill that was killed (it has no record): the drill removes it.
    const killed = '20260101-000000-abcdef';
    await admin(kube).post('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: `lifeboat-drill-${killed}-secrets-0`, labels: { 'lifeboat.io/drill': killed } },
    });
    const r = await cli(['integrity-check', '--component', 'secrets', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.kind, 'drill');
    assert.ok(['success', 'warning'].includes(r.json.status), r.json.status);
    assert.deepEqual(
      r.json.steps.map((s: any) => s.name),
      ['read-data', 'secrets'],
    );
    const s = r.json.steps[1];
    assert.equal(s.status, 'success', JSON.stringify(s));
    assert.equal(s.layer, 'secrets');
    assert.equal(s.snapshot, undefined, 'no repository snapshot: the backup is in the vault');
    assert.equal(s.budgetMs, 15 * 60_000);
    assert.equal(s.summary.namespaces, NS);
    assert.equal(s.summary.manifests, 1);
    assert.equal(s.summary.secrets, 4);
    assert.equal(s.summary.secretsRestored, 4);
    assert.equal(s.summary.secretsVerified, 4);
    assert.equal(s.summary.leftoversRemoved, 1);
    assert.ok(Date.parse(s.summary.backupTime) > Date.now() - 3600_000, s.summary.backupTime);
    assert.equal(s.snapshotTime, s.summary.backupTime);
    assert.match(s.summary.scratchNamespaces, new RegExp(`^lifeboat-drill-${r.json.id}-secrets-0$`));
    assert.deepEqual(await settled(drillNamespaces), [], 'no scratch namespace left');
    // The original Secrets are untouched.
    const live = (await get(`/api/v1/namespaces/${NS}/secrets/mongodb-password`)) as any;
    assert.equal(live.data.password, b64(MONGO_PASSWORD));
    const [rec] = await records();
    assert.equal(rec.id, r.json.id);
    assert.equal(rec.steps.find((x) => x.name === 'secrets')?.status, 'success');
    await noValues();
  });

  test('all without a Key Vault leaves secrets out and says so; --component secrets is a usage error', async () => {
    const all = await cli(['integrity-check', '--component', 'all', '--read-data-subset', 'off', '--json'], {
      LIFEBOAT_SECRETS_VAULT: '',
    });
    assert.ok(all.code === 0 || all.code === 1, all.stderr);
    const s = all.json.steps.find((x: any) => x.name === 'secrets');
    assert.equal(s.status, 'skipped');
    assert.match(s.reason, /no Key Vault given \(--vault/);
    const one = await cli(['integrity-check', '--component', 'secrets'], { LIFEBOAT_SECRETS_VAULT: '' });
    assert.equal(one.code, 2, one.stderr);
    assert.match(one.stderr, /--component secrets needs a Key Vault/);
    assert.match(one.stderr, /--vault/);
    assert.equal(
      one.stderr
        .trim()
        .split('\n')
        .filter((l) => !/^\s*(next|hint)/i.test(l)).length,
      1,
      one.stderr,
    );
  });

  test('--secrets-namespace with no manifest in the vault: the secrets step fails, saying so', async () => {
    const r = await cli([
      'integrity-check',
      '--component',
      'secrets',
      '--secrets-namespace',
      'other',
      '--json',
    ]);
    assert.equal(r.code, 1, r.stderr);
    const s = r.json.steps.find((x: any) => x.name === 'secrets');
    assert.equal(s.status, 'failure');
    assert.equal(s.error.code, 'NOT_FOUND');
    assert.match(s.error.message, /no secrets backup in Key Vault/);
    assert.deepEqual(await drillNamespaces(), []);
  });

  test("a vault value changed behind Lifeboat's back: the drill fails naming the Secret, and cleans up", async () => {
    const vault = new SecretClient(kv.url, staticCredential(), {
      disableChallengeResourceVerification: true,
      retryOptions: { maxRetries: 0 },
    });
    const name = vaultName(NS, 'mongodb-password');
    const current = await vault.getSecret(name);
    // Tags kept, value changed: only reading the value back and hashing it finds this.
    await vault.setSecret(name, CHANGED_VALUE, { tags: current.properties.tags });
    const r = await cli(['integrity-check', '--component', 'secrets', '--json']);
    assert.equal(r.code, 3, r.stderr);
    const s = r.json.steps.find((x: any) => x.name === 'secrets');
    assert.equal(s.status, 'failure');
    assert.equal(s.error.code, 'INTEGRITY');
    assert.match(
      s.error.message,
      new RegExp(`secret ${NS}/mongodb-password \\(Key Vault ${name}\\): does not match the manifest digest`),
    );
    assert.ok(s.error.hint);
    assert.deepEqual(await settled(drillNamespaces), [], 'the scratch namespace is deleted on failure too');
    await noValues();
  });
});
