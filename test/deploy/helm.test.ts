/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests and API objects are untyped */
/**
 * The Helm chart deploy/helm/lifeboat with the real helm (built from the Go module proxy by
 * scripts/tools/helm.ts) and the real kube-apiserver (test/env/kube.ts):
 * - `helm lint` and `helm template` with the default values and with every feature on (test/deploy/
 *   full-values.yaml); values.schema.json makes helm reject bad values;
 * - the ClusterRole and the PrometheusRule are the shipped ones (no drift from deploy/rbac and
 *   deploy/monitoring);
 * - everything rendered is server-side applied with strict field validation (the Prometheus Operator's
 *   real CRDs for ServiceMonitor and PrometheusRule) and read back;
 * - a CronJob's command, exactly as rendered (args and env), runs against the same apiserver as the
 *   chart's ServiceAccount (TokenRequest), so the chart's RBAC is the one that works, and something it
 *   does not grant is denied.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { ensureTool } from '../../scripts/tools/toolbox.ts';
import { helm, monitoringCrdsTool } from '../../scripts/tools/helm.ts';
import { chartRulesYaml } from '../../scripts/gen-monitoring.ts';
import { chartClusterRoleRules } from '../../scripts/gen-deploy-docs.ts';
import { DEFAULT_STAGES, parseBudget } from '../../src/operations/pipeline-config.ts';
import { runCli } from '../env/cli.ts';
import { PROJECT_ROOT, tempDir, type TempDir } from '../env/index.ts';
import { installCrds, rawRequest, startKube, type KubeTestCluster } from '../env/kube.ts';
import { admin } from '../env/kube-controllers.ts';
import { createRocketChat } from '../env/kube-fixtures.ts';

const execFileP = promisify(execFile);
const CHART = path.join(PROJECT_ROOT, 'deploy/helm/lifeboat');
const FULL_VALUES = path.join(PROJECT_ROOT, 'test/deploy/full-values.yaml');
const NS = 'lifeboat';
const RELEASE = 'lifeboat';

/** Where each kind the chart renders lives in the API (namespaced unless marked). */
const API: Record<string, { base: string; plural: string; cluster?: boolean }> = {
  ServiceAccount: { base: '/api/v1', plural: 'serviceaccounts' },
  ConfigMap: { base: '/api/v1', plural: 'configmaps' },
  Service: { base: '/api/v1', plural: 'services' },
  ClusterRole: { base: '/apis/rbac.authorization.k8s.io/v1', plural: 'clusterroles', cluster: true },
  ClusterRoleBinding: {
    base: '/apis/rbac.authorization.k8s.io/v1',
    plural: 'clusterrolebindings',
    cluster: true,
  },
  CronJob: { base: '/apis/batch/v1', plural: 'cronjobs' },
  Deployment: { base: '/apis/apps/v1', plural: 'deployments' },
  ServiceMonitor: { base: '/apis/monitoring.coreos.com/v1', plural: 'servicemonitors' },
  PrometheusRule: { base: '/apis/monitoring.coreos.com/v1', plural: 'prometheusrules' },
  SecretProviderClass: { base: '/apis/secrets-store.csi.x-k8s.io/v1', plural: 'secretproviderclasses' },
};

function urlOf(doc: any): string {
  const api = API[doc.kind];
  assert.ok(api, `the test knows where ${doc.kind} lives`);
  return api.cluster
    ? `${api.base}/${api.plural}/${doc.metadata.name}`
    : `${api.base}/namespaces/${doc.metadata.namespace}/${api.plural}/${doc.metadata.name}`;
}

/**
 * The Secrets Store CSI driver's CRD is not on the Go module proxy (its module is not served), so the
 * test apiserver gets a stand-in that checks only the group, version and kind; the SecretProviderClass
 * parameters are asserted field by field below instead.
 */
const SECRET_PROVIDER_CLASS_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'secretproviderclasses.secrets-store.csi.x-k8s.io' },
  spec: {
    group: 'secrets-store.csi.x-k8s.io',
    scope: 'Namespaced',
    names: { plural: 'secretproviderclasses', singular: 'secretproviderclass', kind: 'SecretProviderClass' },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        },
      },
    ],
  },
};

describe('Helm chart deploy/helm/lifeboat', () => {
  let helmBin: string;
  let kube: KubeTestCluster;
  let tmp: TempDir;
  let defaults: any[];
  let full: any[];

  async function helmRun(args: string[]): Promise<{ code: number; out: string }> {
    try {
      const r = await execFileP(helmBin, args, {
        maxBuffer: 32 * 1024 * 1024,
        env: {
          ...process.env,
          HELM_CACHE_HOME: tmp.path,
          HELM_CONFIG_HOME: tmp.path,
          HELM_DATA_HOME: tmp.path,
        },
      });
      return { code: 0, out: r.stdout + r.stderr };
    } catch (e: any) {
      return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  }

  async function render(extra: string[] = []): Promise<any[]> {
    const r = await helmRun(['template', RELEASE, CHART, '--namespace', NS, ...extra]);
    assert.equal(r.code, 0, r.out);
    return YAML.parseAllDocuments(r.out)
      .map((d) => d.toJS())
      .filter((d) => d);
  }

  before(async () => {
    tmp = await tempDir('lifeboat-helm-');
    const [bin, crds] = await Promise.all([ensureTool(helm), ensureTool(monitoringCrdsTool)]);
    helmBin = path.join(bin, 'bin', 'helm');
    kube = await startKube();
    await installCrds(kube, path.join(crds, 'crds'));
    const spc = await rawRequest(
      kube,
      kube.tokens.admin,
      'POST',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      SECRET_PROVIDER_CLASS_CRD,
    );
    assert.equal(spc.status, 201, JSON.stringify(spc.body));
    defaults = await render();
    full = await render(['-f', FULL_VALUES]);
  });

  after(async () => {
    await kube?.stop();
    await tmp?.cleanup();
  });

  test('helm lint passes with the default and the full values', async () => {
    for (const extra of [[], ['-f', FULL_VALUES]]) {
      const r = await helmRun(['lint', '--strict', CHART, ...extra]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  test('values.schema.json makes helm reject bad values', async () => {
    for (const [set, why] of [
      ['pipeline.schedule=daily', /schedule/],
      ['pipeline.activeDeadlineSeconds=0', /activeDeadlineSeconds/],
      ['pipelin.enabled=false', /pipelin/],
      ['serve.port=80', /port/],
      ['credentials.existingSecrets[0]=Bad_Name', /existingSecrets/],
      ['config.mongodb.uri=mongodb://backup:hunter2@mongodb:27017/', /uri/],
      ['drills.schedules.mongodb.components[0]=everything', /components/],
    ] as const) {
      const r = await helmRun(['template', RELEASE, CHART, '--set', set]);
      assert.notEqual(r.code, 0, `--set ${set} was accepted`);
      assert.match(r.out, /values don't meet the specifications of the schema|schema/i, r.out);
      assert.match(r.out, why, r.out);
    }
    const kv = await helmRun(['template', RELEASE, CHART, '--set', 'credentials.keyVault.enabled=true']);
    assert.notEqual(kv.code, 0, 'Key Vault without a vault name or objects was accepted');
  });

  test('defaults: the daily pipeline at 02:00 UTC, serve with its Service, nothing optional', () => {
    const kinds = defaults.map((d) => `${d.kind}/${d.metadata.name}`).sort();
    assert.deepEqual(kinds, [
      'ClusterRole/lifeboat',
      'ClusterRoleBinding/lifeboat',
      'ConfigMap/lifeboat-config',
      'CronJob/lifeboat-pipeline',
      'Deployment/lifeboat-serve',
      'Service/lifeboat',
      'ServiceAccount/lifeboat',
    ]);
    const cj = defaults.find((d) => d.kind === 'CronJob');
    assert.equal(cj.spec.schedule, '0 2 * * *');
    assert.equal(cj.spec.timeZone, 'Etc/UTC');
    assert.equal(cj.spec.concurrencyPolicy, 'Forbid');
    assert.ok(cj.spec.startingDeadlineSeconds > 0);
    assert.ok(cj.spec.successfulJobsHistoryLimit >= 1 && cj.spec.failedJobsHistoryLimit >= 1);
    const budgets = Object.entries(DEFAULT_STAGES).reduce(
      (sum, [name, s]) => sum + parseBudget(s.budget, name),
      0,
    );
    assert.ok(
      cj.spec.jobTemplate.spec.activeDeadlineSeconds * 1000 > budgets,
      `activeDeadlineSeconds above the default stage budgets (${budgets / 60_000} min)`,
    );
    const pod = cj.spec.jobTemplate.spec.template.spec;
    assert.deepEqual(pod.containers[0].args, ['pipeline', 'run', '--reason', 'schedule']);
    for (const workload of defaults.filter((d) => d.kind === 'CronJob' || d.kind === 'Deployment')) {
      const spec =
        workload.kind === 'CronJob'
          ? workload.spec.jobTemplate.spec.template.spec
          : workload.spec.template.spec;
      assert.equal(spec.securityContext.runAsNonRoot, true);
      const c = spec.containers[0];
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
      assert.ok(c.resources.requests.memory && c.resources.limits.memory, `${workload.metadata.name} memory`);
      assert.equal(spec.serviceAccountName, 'lifeboat');
    }
  });

  test('the ClusterRole is deploy/rbac/lifeboat-clusterrole.yaml, the PrometheusRule deploy/monitoring', async () => {
    const shipped = YAML.parseAllDocuments(
      await readFile(path.join(PROJECT_ROOT, 'deploy/rbac/lifeboat-clusterrole.yaml'), 'utf8'),
    ).map((d) => d.toJS());
    const role = defaults.find((d) => d.kind === 'ClusterRole');
    assert.deepEqual(role.rules, shipped.find((d) => d.kind === 'ClusterRole').rules);
    assert.equal(
      await readFile(path.join(CHART, 'files/clusterrole-rules.yaml'), 'utf8'),
      chartClusterRoleRules(),
      'run `node scripts/gen-deploy-docs.ts`',
    );
    const rules = YAML.parse(
      await readFile(path.join(PROJECT_ROOT, 'deploy/monitoring/prometheus-rules.yaml'), 'utf8'),
    );
    assert.deepEqual(full.find((d) => d.kind === 'PrometheusRule').spec, rules.spec);
    assert.equal(
      await readFile(path.join(CHART, 'files/prometheus-rules.yaml'), 'utf8'),
      chartRulesYaml(),
      'run `node scripts/gen-monitoring.ts`',
    );
  });

  test('full values: layers, drills, PITR, ServiceMonitor, workload identity and Key Vault', () => {
    const byName = new Map(full.map((d) => [`${d.kind}/${d.metadata.name}`, d]));
    const args = (n: string) => byName.get(n).spec.jobTemplate.spec.template.spec.containers[0].args;
    assert.deepEqual(args('CronJob/lifeboat-cluster-state'), [
      'pipeline',
      'run',
      '--reason',
      'schedule',
      '--stages',
      'cluster-state',
      '--slot',
      'cluster-state',
    ]);
    assert.deepEqual(args('CronJob/lifeboat-drill-mongodb'), [
      'integrity-check',
      '--reason',
      'schedule',
      '--component',
      'mongodb',
    ]);
    assert.equal(byName.get('CronJob/lifeboat-drill-mongodb').spec.schedule, '0 4 * * 0');
    assert.equal(byName.get('CronJob/lifeboat-drill-pvc').spec.schedule, '0 5 1 * *');
    assert.equal(byName.get('CronJob/lifeboat-drill-full').spec.schedule, '0 6 1 1,4,7,10 *');
    const pitr = byName.get('Deployment/lifeboat-pitr');
    assert.equal(pitr.spec.strategy.type, 'Recreate');
    assert.equal(pitr.spec.replicas, 1);
    assert.deepEqual(pitr.spec.template.spec.containers[0].args, [
      'mongodb',
      'pitr',
      'run',
      '--slice-interval',
      '60',
    ]);
    const sa = byName.get('ServiceAccount/lifeboat');
    assert.equal(
      sa.metadata.annotations['azure.workload.identity/client-id'],
      '00000000-0000-0000-0000-000000000001',
    );
    assert.equal(pitr.spec.template.metadata.labels['azure.workload.identity/use'], 'true');
    const spc = byName.get('SecretProviderClass/lifeboat');
    assert.equal(spc.spec.provider, 'azure');
    assert.equal(spc.spec.parameters.keyvaultName, 'rc-prod-kv');
    assert.equal(spc.spec.parameters.clientID, '00000000-0000-0000-0000-000000000001');
    assert.deepEqual(spc.spec.secretObjects[0].data, [
      { objectName: 'rc-mongodb-backup-password', key: 'LIFEBOAT_MONGODB_PASSWORD' },
    ]);
    const pod = byName.get('CronJob/lifeboat-pipeline').spec.jobTemplate.spec.template.spec;
    assert.deepEqual(pod.containers[0].envFrom, [
      { secretRef: { name: 'lifeboat-credentials' } },
      { secretRef: { name: 'lifeboat-keyvault' } },
    ]);
    assert.equal(pod.volumes.find((v: any) => v.name === 'keyvault').csi.driver, 'secrets-store.csi.k8s.io');
    const sm = byName.get('ServiceMonitor/lifeboat');
    assert.equal(sm.spec.endpoints[0].path, '/metrics');
    // No credential in anything rendered: only references to Secrets.
    assert.ok(!full.some((d) => d.kind === 'Secret'), 'the chart renders no Secret');
  });

  let applied: any[];
  test('everything rendered server-side applies with strict validation and reads back', async () => {
    await admin(kube).post('/api/v1/namespaces', { metadata: { name: NS } });
    applied = [];
    for (const doc of full) {
      const res = await rawRequest(
        kube,
        kube.tokens.admin,
        'PATCH',
        `${urlOf(doc)}?fieldManager=helm-test&fieldValidation=Strict`,
        JSON.stringify(doc),
        'application/apply-patch+yaml',
      );
      assert.ok(
        res.status === 201 || res.status === 200,
        `${doc.kind}/${doc.metadata.name}: ${JSON.stringify(res.body)}`,
      );
      const back = await rawRequest(kube, kube.tokens.admin, 'GET', urlOf(doc));
      assert.equal(back.status, 200);
      applied.push(back.body);
    }
    const cj = applied.find((d) => d.kind === 'CronJob' && d.metadata.name === 'lifeboat-pipeline');
    assert.equal(cj.spec.schedule, '0 2 * * *');
    assert.equal(cj.spec.timeZone, 'Etc/UTC');
    assert.equal(
      cj.spec.jobTemplate.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem,
      true,
    );
    const rule = applied.find((d) => d.kind === 'PrometheusRule');
    assert.ok(rule.spec.groups[0].rules.length > 0);
  });

  test("a CronJob's command, as rendered, runs as the chart's ServiceAccount; what it does not grant is denied", async () => {
    assert.ok(applied, 'the apply test ran first');
    await createRocketChat(kube, 'rocketchat');
    const token = await kube.serviceAccountToken(NS, 'lifeboat');
    const kubeconfig = await kube.writeKubeconfig(
      path.join(tmp.path, 'sa.kubeconfig'),
      [{ name: 'lifeboat', token, namespace: NS }],
      'lifeboat',
    );
    // The container, from what the apiserver stored: its args, its env, its lifeboat.yaml.
    const cj = applied.find((d) => d.kind === 'CronJob' && d.metadata.name === 'lifeboat-cluster-state');
    const container = cj.spec.jobTemplate.spec.template.spec.containers[0];
    const cm = applied.find((d) => d.kind === 'ConfigMap');
    const config = path.join(tmp.path, 'lifeboat.yaml');
    await writeFile(config, cm.data['lifeboat.yaml']);
    const env: NodeJS.ProcessEnv = Object.fromEntries(container.env.map((e: any) => [e.name, e.value]));
    assert.equal(env.LIFEBOAT_CONFIG, '/etc/lifeboat/lifeboat.yaml');
    assert.equal(env.LIFEBOAT_ACTOR, 'system:serviceaccount:lifeboat:lifeboat');
    Object.assign(env, {
      LIFEBOAT_CONFIG: config,
      // In the Pod, LIFEBOAT_KUBE_IN_CLUSTER reads the mounted token; here the same token comes from a
      // kubeconfig (an explicit kubeconfig is preferred over in-cluster by the CLI).
      KUBECONFIG: kubeconfig,
      // The repository and key the ConfigMap names are Azure's; this run writes to a local one.
      LIFEBOAT_REPO: path.join(tmp.path, 'repo'),
      LIFEBOAT_KEYSTORE: 'passphrase',
      LIFEBOAT_PASSWORD: 'helm test passphrase',
      XDG_CONFIG_HOME: path.join(tmp.path, 'cfg'),
    });
    const init = await runCli(['init'], { env });
    assert.equal(init.code, 0, init.stderr);
    const r = await runCli([...container.args, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.run.status, 'success', r.stdout);
    assert.deepEqual(
      r.json.run.steps.map((s: any) => [s.name, s.status]),
      [['cluster-state', 'success']],
    );
    assert.equal(r.json.run.settings.slot, 'cluster-state');
    // The same token is refused what the ClusterRole leaves out.
    for (const [method, url] of [
      ['DELETE', '/api/v1/namespaces/rocketchat/secrets/mongodb-auth'],
      // Reading is granted everywhere (cluster-state backup discovers what it backs up); writing is not.
      ['DELETE', '/api/v1/nodes/some-node'],
      ['POST', '/api/v1/namespaces/rocketchat/pods'],
      ['POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings'],
    ] as const) {
      const denied = await rawRequest(
        kube,
        token,
        method,
        url,
        method === 'POST' ? { metadata: { name: 'x' } } : undefined,
      );
      assert.equal(denied.status, 403, `${method} ${url}: ${JSON.stringify(denied.body)}`);
    }
  });
});
