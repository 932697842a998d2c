/**
 * helm (Helm v4, Go module helm.sh/helm/v4 v4.3.2): the deployment tests run `helm lint` and
 * `helm template` on deploy/helm/lifeboat and apply what it renders to the test kube-apiserver, so the
 * chart is checked by the same binary an operator installs it with. v4 rather than v3: v3 receives only
 * security fixes since Helm 4's release.
 *
 * Built from the Go module proxy through the module in tools/helm/ (its go.mod names helm as a `tool`,
 * go.sum pins every dependency). Cold build (empty module and build caches, 2 shared cores, load ~20):
 * 24 min 48 s wall for 9 min of CPU (tools/helm/README.md); ensureTool caches it per machine.
 */
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { PROJECT_ROOT, run, type Tool } from './toolbox.ts';

const VERSION = 'v4.3.2';
const MODULE_DIR = path.join(PROJECT_ROOT, 'tools', 'helm');
const PKG = 'helm.sh/helm/v4/cmd/helm';

export const helm: Tool = {
  name: 'helm',
  version: VERSION.slice(1),
  files: ['bin/helm'],
  async install(dir: string): Promise<void> {
    const mod = await readFile(path.join(MODULE_DIR, 'go.mod'), 'utf8');
    if (!mod.includes(`helm.sh/helm/v4 ${VERSION}`))
      throw new Error(`tools/helm/go.mod does not require helm ${VERSION}: update it and scripts/tools/helm.ts together`);
    await mkdir(path.join(dir, 'bin'), { recursive: true });
    await run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', path.join(dir, 'bin', 'helm'), PKG], {
      cwd: MODULE_DIR,
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-p=2 -mod=readonly -buildvcs=false' },
    });
  },
};

const PROMETHEUS_OPERATOR_MODULE = 'github.com/prometheus-operator/prometheus-operator';
const PROMETHEUS_OPERATOR_VERSION = 'v0.85.0';
/** The Prometheus Operator CRDs the chart's ServiceMonitor and PrometheusRule need, as shipped upstream. */
export const MONITORING_CRD_FILES = [
  'monitoring.coreos.com_servicemonitors.yaml',
  'monitoring.coreos.com_prometheusrules.yaml',
];

/**
 * The Prometheus Operator's CRDs, taken from its Go module (the module zip carries example/), so the
 * test apiserver validates the chart's ServiceMonitor and PrometheusRule against their real schemas.
 */
export const monitoringCrdsTool: Tool = {
  name: 'monitoring-crds',
  version: PROMETHEUS_OPERATOR_VERSION.slice(1),
  files: MONITORING_CRD_FILES.map((f) => `crds/${f}`),
  async install(dir: string): Promise<void> {
    const out = await run('go', ['mod', 'download', '-json', `${PROMETHEUS_OPERATOR_MODULE}@${PROMETHEUS_OPERATOR_VERSION}`], {
      cwd: MODULE_DIR,
      env: { ...process.env, GOFLAGS: '-mod=mod' },
      quiet: true,
    });
    const info = JSON.parse(out.slice(out.indexOf('{'))) as { Dir?: string; Error?: string };
    if (!info.Dir) throw new Error(`go mod download ${PROMETHEUS_OPERATOR_MODULE}: ${info.Error ?? 'no directory'}`);
    await mkdir(path.join(dir, 'crds'), { recursive: true });
    for (const f of MONITORING_CRD_FILES)
      await copyFile(path.join(info.Dir, 'example', 'prometheus-operator-crd', f), path.join(dir, 'crds', f));
  },
};
