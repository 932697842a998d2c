/* eslint-disable @typescript-eslint/no-explicit-any -- API objects are untyped JSON in these tests */
/**
 * The round trip against a REAL Azure Key Vault, when LIFEBOAT_TEST_KEYVAULT_URL names one (skipped
 * otherwise: no vault is reachable from the machines CI runs on, which is why test/env/keyvault.ts exists).
 * Credentials: DefaultAzureCredential (az login, workload identity, AZURE_CLIENT_ID/SECRET/TENANT_ID), with
 * secrets get/list/set/delete/recover/purge on the vault. Every vault object the test wrote is deleted and
 * purged afterwards (Lifeboat itself never deletes anything in a vault).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { runCli } from '../env/cli.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import { admin, deleteNamespace } from '../env/kube-controllers.ts';

const VAULT = process.env.LIFEBOAT_TEST_KEYVAULT_URL;
const skip = !VAULT && 'set LIFEBOAT_TEST_KEYVAULT_URL to run against a real Key Vault';
const NS = `lb-test-${randomBytes(4).toString('hex')}`;
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

let kube: KubeTestCluster;
before(async () => {
  if (skip) return;
  kube = await startKube({ crds: false });
});
after(async () => {
  if (skip) return;
  const { SecretClient } = await import('@azure/keyvault-secrets');
  const { DefaultAzureCredential } = await import('@azure/identity');
  const client = new SecretClient(VAULT!, new DefaultAzureCredential());
  for await (const p of client.listPropertiesOfSecrets()) {
    if (p.tags?.['k8s-namespace'] !== NS && p.name !== `lifeboat-manifest-${NS}`) continue;
    await (await client.beginDeleteSecret(p.name)).pollUntilDone();
    await client.purgeDeletedSecret(p.name).catch(() => {});
  }
  await kube?.stop();
});

test(
  'a namespace of Secrets (one over 25 KB) goes to a real vault and comes back byte-identical',
  { skip },
  async () => {
    const a = admin(kube);
    await a.post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    const big = randomBytes(40 * 1024);
    const secrets = [
      { name: 'mongodb-password', type: 'Opaque', data: { password: b64('real-vault-test') } },
      { name: 'chat.tls', type: 'kubernetes.io/tls', data: { 'tls.crt': b64('C'), 'tls.key': b64('K') } },
      { name: 'ca-bundle', type: 'Opaque', data: { 'ca.crt': b64(big) } },
    ];
    for (const s of secrets)
      await a.post(`/api/v1/namespaces/${NS}/secrets`, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: s.name },
        type: s.type,
        data: s.data,
      });
    const env = { KUBECONFIG: kube.kubeconfigPath, LIFEBOAT_SECRETS_VAULT: VAULT! };
    const backup = await runCli(['secrets', 'backup', '--namespace', NS, '--json'], { env });
    assert.equal(backup.code, 0, backup.stderr);
    const again = await runCli(['secrets', 'backup', '--namespace', NS, '--json'], { env });
    assert.equal(again.json.writes, 0, 'unchanged Secrets write nothing');
    await deleteNamespace(kube, NS);
    const sync = await runCli(['secrets', 'sync', '--namespace', NS, '--json'], { env });
    assert.equal(sync.code, 0, sync.stderr);
    const back = (await a.get(`/api/v1/namespaces/${NS}/secrets`)).body.items as any[];
    for (const s of secrets) {
      const got = back.find((b) => b.metadata.name === s.name);
      assert.ok(got, s.name);
      assert.equal(got.type, s.type);
      assert.deepEqual(got.data, s.data, `${s.name} byte-identical`);
    }
  },
);
