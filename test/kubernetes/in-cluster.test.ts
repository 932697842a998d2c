/**
 * Needs: etcd + kube-apiserver (test/env/kube.ts). Runs the CLI the way a Pod does: no kubeconfig, the
 * API server's address in KUBERNETES_SERVICE_HOST/PORT, and the ServiceAccount's token, CA and namespace
 * as files (under LIFEBOAT_SERVICEACCOUNT_ROOT, standing in for `/`). The tokens are real ServiceAccount
 * tokens from the TokenRequest API; authorization is the real RBAC, so a missing grant is a real 403.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import { asShippedServiceAccount, createRocketChat } from '../env/kube-fixtures.ts';

describe('--in-cluster: the CLI as a Pod with a ServiceAccount', () => {
  let kube: KubeTestCluster;
  let work: TempDir;

  /** A Pod's view: the mounted ServiceAccount files for this token, and the service environment. */
  async function podEnv(name: string, token: string): Promise<NodeJS.ProcessEnv> {
    const root = path.join(work.path, name);
    const sa = path.join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
    await mkdir(sa, { recursive: true });
    await writeFile(path.join(sa, 'token'), token);
    await writeFile(path.join(sa, 'ca.crt'), kube.caPem);
    await writeFile(path.join(sa, 'namespace'), 'lifeboat');
    const url = new URL(kube.server);
    return {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'test-passphrase',
      // No kubeconfig anywhere: HOME has no .kube, KUBECONFIG is unset.
      HOME: path.join(work.path, 'home'),
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
      KUBERNETES_SERVICE_HOST: url.hostname,
      KUBERNETES_SERVICE_PORT: url.port,
      LIFEBOAT_SERVICEACCOUNT_ROOT: root,
    };
  }
  const cli = (args: string[], env: NodeJS.ProcessEnv) =>
    runCli(args, { env: { ...env, KUBECONFIG: undefined } });

  before(async () => {
    kube = await startKube();
    work = await tempDir('lifeboat-k8s-pod-');
    await createRocketChat(kube, 'rocketchat');
    await asShippedServiceAccount(kube, path.join(work.path, 'unused-kubeconfig.yaml'));
    const init = await runCli(['init', '--json'], {
      env: { LIFEBOAT_REPO: path.join(work.path, 'repo'), LIFEBOAT_PASSWORD: 'test-passphrase' },
    });
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await kube?.stop();
    await work?.cleanup();
  });

  test('the shipped ServiceAccount backs up and plans a restore, found without --in-cluster and with it', async () => {
    const env = await podEnv('lifeboat', await kube.serviceAccountToken('lifeboat', 'lifeboat'));
    const auto = await cli(['cluster-state', 'backup', '-n', 'rocketchat', '--json'], env);
    assert.equal(auto.code, 0, auto.stderr);
    assert.equal(auto.json.counts.Certificate, 1);
    const flagged = await cli(
      ['cluster-state', 'restore', auto.json.id, '--in-cluster', '--dry-run', '--json'],
      env,
    );
    assert.equal(flagged.code, 0, flagged.stderr);
    assert.ok(flagged.json.objects.every((o: { result: string }) => o.result === 'would-skip'));
  });

  test('a ServiceAccount without the role is refused by RBAC, and the error names it', async () => {
    const env = await podEnv('limited', await kube.serviceAccountToken('lifeboat', 'limited'));
    const r = await cli(['cluster-state', 'backup', '-n', 'rocketchat', '--in-cluster'], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /forbidden by RBAC: .*system:serviceaccount:lifeboat:limited/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  });

  test('--in-cluster outside a Pod says so', async () => {
    const env = await podEnv('nopod', 'x');
    delete env.KUBERNETES_SERVICE_HOST;
    const r = await cli(['cluster-state', 'backup', '--in-cluster'], env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /KUBERNETES_SERVICE_HOST\/PORT are not set: this is not a Pod/);
  });
});
