/* eslint-disable @typescript-eslint/no-explicit-any -- API objects are untyped JSON in these tests */
/**
 * Needs: etcd + kube-apiserver (test/env/kube.ts) and the test Key Vault (test/env/keyvault.ts — a fake
 * over real HTTPS; what it models is listed in its header). Runs the real CLI: `lifeboat secrets backup`
 * and `lifeboat secrets sync`, with a bearer token from LIFEBOAT_SECRETS_VAULT_TOKEN and the test CA in
 * NODE_EXTRA_CA_CERTS.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { SecretClient } from '@azure/keyvault-secrets';
import { runCli, type CliResult } from '../env/cli.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import { admin, deleteNamespace } from '../env/kube-controllers.ts';
import { startKeyVault, staticCredential, VALID_TOKEN, type TestKeyVault } from '../env/keyvault.ts';
import { vaultName } from '../../src/sources/secrets/names.ts';
import { asShippedServiceAccount } from '../env/kube-fixtures.ts';
import { tempDir, type TempDir } from '../env/index.ts';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const MONGO_PASSWORD = 'mongo-Pa55word-do-not-print';
const NEW_MONGO_PASSWORD = 'rotated-Pa55word-do-not-print';
const SMTP_PASSWORD = 'smtp-s3cret-do-not-print';
const BIG = randomBytes(60 * 1024); // base64 ≈ 80 KB: four Key Vault parts
const KNOWN_VALUES = [MONGO_PASSWORD, NEW_MONGO_PASSWORD, SMTP_PASSWORD];

function secret(name: string, data: Record<string, string | Buffer>, extra: Record<string, any> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, ...(extra.metadata ?? {}) },
    type: extra.type ?? 'Opaque',
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

const SECRETS = [
  secret('mongodb-password', { password: MONGO_PASSWORD }),
  secret(
    'rocketchat.smtp-config',
    { SMTP_PASSWORD, 'smtp.user': 'chat@example.org', _port: '587' },
    {
      metadata: {
        labels: { 'app.kubernetes.io/name': 'rocketchat' },
        annotations: { 'example.org/note': 'ünïcode kept' },
      },
    },
  ),
  secret('chat-tls', { 'tls.crt': 'CERT', 'tls.key': 'KEY' }, { type: 'kubernetes.io/tls' }),
  secret('ca-bundle', { 'ca.crt': BIG }),
];

describe('secrets backup to Key Vault and sync back, against kube-apiserver', () => {
  let kube: KubeTestCluster;
  let kv: TestKeyVault;
  let vault: SecretClient;
  let env: NodeJS.ProcessEnv;
  let work: TempDir;
  const outputs: string[] = [];
  const cli = async (args: string[]): Promise<CliResult> => {
    const r = await runCli(args, { env });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const live = async (ns: string) => {
    const items = (await admin(kube).get(`/api/v1/namespaces/${ns}/secrets`)).body.items as any[];
    return Object.fromEntries(
      items.map((s) => [
        s.metadata.name,
        { type: s.type, data: s.data, labels: s.metadata.labels, annotations: s.metadata.annotations },
      ]),
    );
  };

  before(async () => {
    work = await tempDir('lifeboat-secrets-');
    [kube, kv] = await Promise.all([startKube({ crds: false }), startKeyVault({ recoveryDelayMs: 700 })]);
    vault = new SecretClient(kv.url, staticCredential(), {
      disableChallengeResourceVerification: true,
      retryOptions: { maxRetries: 0 },
    });
    env = {
      KUBECONFIG: kube.kubeconfigPath,
      NODE_EXTRA_CA_CERTS: kv.tls.caFile,
      LIFEBOAT_SECRETS_VAULT: kv.url,
      LIFEBOAT_SECRETS_VAULT_TOKEN: VALID_TOKEN,
    };
    const a = admin(kube);
    for (const ns of ['rocketchat', 'other'])
      await a.post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    for (const s of SECRETS) await a.post('/api/v1/namespaces/rocketchat/secrets', s);
    await a.post(
      '/api/v1/namespaces/rocketchat/secrets',
      secret('sh.helm.release.v1.rocketchat.v1', { release: 'H4sI' }, { type: 'helm.sh/release.v1' }),
    );
    await a.post('/api/v1/namespaces/other/secrets', secret('taken', { token: 'x' }));
  });
  after(async () => {
    await kube?.stop();
    await kv?.close();
    await work?.cleanup();
  });

  let original: Record<string, any> = {};
  test('backup writes one vault secret per Secret, splits the big one, skips Helm records', async () => {
    original = await live('rocketchat');
    const plan = await cli(['secrets', 'backup', '--namespace', 'rocketchat', '--dry-run', '--json']);
    assert.equal(plan.code, 0, plan.stderr);
    assert.equal(plan.json.secrets.length, 4);
    assert.ok(plan.json.secrets.every((s: any) => s.action === 'created'));
    assert.equal(kv.versionCount(), 0, 'a dry run writes nothing');
    const r = await cli(['secrets', 'backup', '--namespace', 'rocketchat', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const byName = new Map(r.json.secrets.map((s: any) => [s.name, s]));
    assert.deepEqual([...byName.keys()].sort(), [
      'ca-bundle',
      'chat-tls',
      'mongodb-password',
      'rocketchat.smtp-config',
    ]);
    for (const s of byName.values()) assert.equal((s as any).action, 'created');
    assert.equal((byName.get('ca-bundle') as any).parts, 4);
    assert.equal((byName.get('chat-tls') as any).type, 'kubernetes.io/tls');
    assert.deepEqual(
      r.json.skipped.map((s: any) => s.name),
      ['sh.helm.release.v1.rocketchat.v1'],
    );
    const stored = await vault.getSecret(vaultName('rocketchat', 'mongodb-password'));
    assert.equal(stored.properties.tags?.['managed-by'], 'lifeboat');
    assert.equal(stored.properties.tags?.['k8s-name'], 'mongodb-password');
    assert.ok(kv.versionCount('lifeboat-manifest-rocketchat') === 1);
  });

  test('a second backup of unchanged Secrets writes nothing, even through throttling', async () => {
    const versions = kv.versionCount();
    kv.throttle(2, 1);
    const r = await cli(['secrets', 'backup', '--namespace', 'rocketchat', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(kv.throttled, 2, 'the 429s were served and retried after Retry-After');
    assert.ok(r.json.secrets.every((s: any) => s.action === 'unchanged'));
    assert.equal(r.json.writes, 0);
    assert.equal(kv.versionCount(), versions, 'no new version anywhere in the vault');
    const human = await cli(['secrets', 'backup', '--namespace', 'rocketchat']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      /4 Secrets from rocketchat: 0 written, 4 unchanged, 0 conflicts \(0 vault writes\)/,
    );
    assert.match(human.stdout, /skipped\s+rocketchat\/sh\.helm\.release\.v1\.rocketchat\.v1/);
  });

  test('a vault object Lifeboat did not create is left alone, and the run says so', async () => {
    const foreign = vaultName('other', 'taken');
    await vault.setSecret(foreign, 'someone-elses-value');
    const r = await cli(['secrets', 'backup', '--namespace', 'other', '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.json.conflicts, 1);
    assert.match(r.json.secrets[0].reason, /without managed-by=lifeboat; left alone/);
    assert.match(r.stderr, /other\/taken not backed up/);
    assert.equal(kv.versionCount(foreign), 1);
    assert.equal((await vault.getSecret(foreign)).value, 'someone-elses-value');
  });

  test('a soft-deleted name is recovered, then written', async () => {
    const name = vaultName('rocketchat', 'mongodb-password');
    await (await vault.beginDeleteSecret(name)).pollUntilDone();
    await admin(kube).put(
      '/api/v1/namespaces/rocketchat/secrets/mongodb-password',
      secret('mongodb-password', { password: NEW_MONGO_PASSWORD }),
    );
    const r = await cli(['secrets', 'backup', '--namespace', 'rocketchat', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const item = r.json.secrets.find((s: any) => s.name === 'mongodb-password');
    assert.equal(item.action, 'recovered');
    assert.equal(kv.versionCount(name), 2, 'recovered (version 1 kept) and written (version 2)');
    assert.ok(kv.log.some((l) => l.method === 'POST' && l.path === `/deletedsecrets/${name}/recover`));
    original = await live('rocketchat');
  });

  test('--diff shows drift by digest; sync recreates an emptied namespace byte for byte', async () => {
    await admin(kube).put(
      '/api/v1/namespaces/rocketchat/secrets/chat-tls',
      secret('chat-tls', { 'tls.crt': 'OTHER', 'tls.key': 'KEY' }, { type: 'kubernetes.io/tls' }),
    );
    await admin(kube).post('/api/v1/namespaces/rocketchat/secrets', secret('new-one', { k: 'v' }));
    const diff = await cli(['secrets', 'sync', '--diff', '--json']);
    assert.equal(diff.code, 1, 'drift found');
    const state = Object.fromEntries(diff.json.secrets.map((s: any) => [s.name, s.action]));
    assert.equal(state['chat-tls'], 'changed');
    assert.equal(state['mongodb-password'], 'same');
    assert.equal(state['new-one'], 'in-cluster-only');

    await deleteNamespace(kube, 'rocketchat');
    const dry = await cli(['secrets', 'sync', '--namespace', 'rocketchat', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.ok(dry.json.secrets.every((s: any) => s.action === 'would-create'));
    assert.equal((await admin(kube).get('/api/v1/namespaces/rocketchat')).status, 404);

    const r = await cli(['secrets', 'sync', '--namespace', 'rocketchat', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.createdNamespaces, ['rocketchat']);
    assert.ok(r.json.secrets.every((s: any) => s.action === 'created'));
    const { 'sh.helm.release.v1.rocketchat.v1': _helm, ...expected } = original;
    assert.deepEqual(await live('rocketchat'), expected);
    assert.equal(
      Buffer.from((await live('rocketchat'))['ca-bundle'].data['ca.crt'], 'base64').compare(BIG),
      0,
    );
  });

  test('--secret syncs one Secret', async () => {
    await admin(kube).del('/api/v1/namespaces/rocketchat/secrets/mongodb-password');
    const r = await cli(['secrets', 'sync', '--secret', 'mongodb-password']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /created\s+rocketchat\/mongodb-password/);
    const now = await live('rocketchat');
    assert.equal(Buffer.from(now['mongodb-password'].data.password, 'base64').toString(), NEW_MONGO_PASSWORD);
    const missing = await cli(['secrets', 'sync', '--secret', 'no-such-secret']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not in the vault's manifests: no-such-secret/);
  });

  test('the shipped ClusterRole is enough for backup and for sync (create and replace)', async () => {
    const a = admin(kube);
    const cfg = await asShippedServiceAccount(kube, path.join(work.path, 'sa.yaml'));
    const b = await cli(['secrets', 'backup', '--json', '--kubeconfig', cfg]);
    assert.equal(b.code, 1, 'the foreign object in namespace other still conflicts');
    assert.ok(b.json.namespaces.includes('rocketchat'), 'namespaces listed with the role');
    await a.put(
      '/api/v1/namespaces/rocketchat/secrets/chat-tls',
      secret('chat-tls', { 'tls.crt': 'DRIFTED', 'tls.key': 'KEY' }, { type: 'kubernetes.io/tls' }),
    );
    const r = await cli(['secrets', 'sync', '--namespace', 'rocketchat', '--json', '--kubeconfig', cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.secrets.find((s: any) => s.name === 'chat-tls').action, 'updated');
    assert.equal((await live('rocketchat'))['chat-tls'].data['tls.crt'], b64('CERT'));
  });

  test('no command printed a secret value, plain or base64, on stdout or stderr', () => {
    const all = outputs.join('\n');
    assert.ok(outputs.length >= 20);
    for (const v of KNOWN_VALUES) {
      assert.ok(!all.includes(v), 'a secret value was printed');
      assert.ok(!all.includes(b64(v)), 'a base64 secret value was printed');
    }
    assert.ok(!all.includes(b64(BIG).slice(0, 40)));
  });
});
