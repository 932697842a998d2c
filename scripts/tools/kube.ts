/**
 * kube-apiserver and etcd for the tests, built from the Go module proxy the way controller-runtime's envtest
 * uses them, plus the CustomResourceDefinitions the Kubernetes tests install (CSI snapshots, cert-manager).
 *
 * `go install k8s.io/kubernetes/cmd/kube-apiserver@vX` is refused because k8s.io/kubernetes replaces its
 * ~30 staging modules with local paths. tools/kube/go.mod is a small wrapper module that requires
 * k8s.io/kubernetes and pins every staging module to the matching v0.x release; tools/kube/cmd/* hold the
 * two mains. The build needs a Go toolchain (`go` on PATH or /usr/local/go/bin) and the module proxy only.
 *
 * The build is the slowest step of a fresh machine (minutes, ~2 GB of memory per compile job), so it runs
 * with two parallel jobs and stripped binaries, and ensureTool caches the result per machine.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { PROJECT_ROOT, run, type Tool } from './toolbox.ts';

/** Must match tools/kube/go.mod (checked before building, so the two cannot drift apart silently). */
export const KUBERNETES_VERSION = 'v1.34.4';
export const STAGING_VERSION = 'v0.34.4';
export const ETCD_VERSION = 'v3.6.4';
/** Modules whose CRD manifests we install; fetched into the Go module cache with `go mod download`. */
export const SNAPSHOTTER_MODULE = 'github.com/kubernetes-csi/external-snapshotter/client/v8';
export const SNAPSHOTTER_VERSION = 'v8.7.0';
export const CERT_MANAGER_MODULE = 'github.com/cert-manager/cert-manager';
export const CERT_MANAGER_VERSION = 'v1.21.2';

const MODULE_DIR = path.join(PROJECT_ROOT, 'tools', 'kube');

function findGo(): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, 'go'))) return path.join(dir, 'go');
  }
  for (const candidate of ['/usr/local/go/bin/go', '/usr/lib/go/bin/go']) if (existsSync(candidate)) return candidate;
  throw new Error(
    'building kube-apiserver and etcd needs a Go toolchain (>= 1.24): install Go (https://go.dev/dl or `apt-get install golang`) and put `go` on PATH',
  );
}

/** Go's environment for our builds: two jobs on a 2-core CI box, module proxy only, no VCS stamping. */
function goEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GOFLAGS: '-p=2 -mod=readonly -buildvcs=false',
    CGO_ENABLED: '0',
    GO111MODULE: 'on',
  };
}

async function checkGoMod(): Promise<void> {
  const mod = await readFile(path.join(MODULE_DIR, 'go.mod'), 'utf8');
  const expect = [
    `k8s.io/kubernetes ${KUBERNETES_VERSION}`,
    `go.etcd.io/etcd/server/v3 ${ETCD_VERSION}`,
    `k8s.io/api => k8s.io/api ${STAGING_VERSION}`,
  ];
  for (const e of expect) {
    if (!mod.includes(e)) throw new Error(`tools/kube/go.mod does not contain "${e}": update it and scripts/tools/kube.ts together`);
  }
}

async function goBuild(pkg: string, outDir: string): Promise<void> {
  await checkGoMod();
  await mkdir(outDir, { recursive: true });
  await run(findGo(), ['build', '-trimpath', '-ldflags=-s -w', '-o', outDir + path.sep, pkg], {
    cwd: MODULE_DIR,
    env: goEnv(),
  });
}

export const kubeApiserverTool: Tool = {
  name: 'kube-apiserver',
  version: KUBERNETES_VERSION.slice(1),
  files: ['bin/kube-apiserver'],
  install: (dir) => goBuild('./cmd/kube-apiserver', path.join(dir, 'bin')),
};

export const etcdTool: Tool = {
  name: 'etcd',
  version: ETCD_VERSION.slice(1),
  files: ['bin/etcd'],
  install: (dir) => goBuild('./cmd/etcd', path.join(dir, 'bin')),
};

/** Downloads a module into the Go module cache (no build) and returns its directory. */
async function moduleDir(module: string, version: string): Promise<string> {
  const out = await run(findGo(), ['mod', 'download', '-json', `${module}@${version}`], {
    cwd: MODULE_DIR,
    env: { ...process.env, GOFLAGS: '-mod=mod' },
    quiet: true,
  });
  const info = JSON.parse(out.slice(out.indexOf('{'))) as { Dir?: string; Error?: string };
  if (!info.Dir) throw new Error(`go mod download ${module}@${version}: ${info.Error ?? 'no directory returned'}`);
  return info.Dir;
}

/** The CRDs, one file each, as shipped in the upstream modules (never edited). */
export const CRD_FILES = {
  volumeSnapshotClasses: 'snapshot.storage.k8s.io_volumesnapshotclasses.yaml',
  volumeSnapshotContents: 'snapshot.storage.k8s.io_volumesnapshotcontents.yaml',
  volumeSnapshots: 'snapshot.storage.k8s.io_volumesnapshots.yaml',
  certificates: 'cert-manager.io_certificates.yaml',
  certificateRequests: 'cert-manager.io_certificaterequests.yaml',
  issuers: 'cert-manager.io_issuers.yaml',
  clusterIssuers: 'cert-manager.io_clusterissuers.yaml',
  orders: 'acme.cert-manager.io_orders.yaml',
  challenges: 'acme.cert-manager.io_challenges.yaml',
} as const;

export const kubeCrdsTool: Tool = {
  name: 'kube-crds',
  version: `snapshotter-${SNAPSHOTTER_VERSION.slice(1)}-cert-manager-${CERT_MANAGER_VERSION.slice(1)}`,
  files: Object.values(CRD_FILES).map((f) => `crds/${f}`),
  async install(dir) {
    const out = path.join(dir, 'crds');
    await mkdir(out, { recursive: true });
    const snap = path.join(await moduleDir(SNAPSHOTTER_MODULE, SNAPSHOTTER_VERSION), 'config', 'crd');
    const cm = path.join(await moduleDir(CERT_MANAGER_MODULE, CERT_MANAGER_VERSION), 'deploy', 'crds');
    for (const [src, prefixes] of [
      [snap, ['snapshot.storage.k8s.io_']],
      [cm, ['cert-manager.io_', 'acme.cert-manager.io_']],
    ] as const) {
      for (const f of await readdir(src)) {
        if (f.endsWith('.yaml') && prefixes.some((p) => f.startsWith(p))) await copyFile(path.join(src, f), path.join(out, f));
      }
    }
  },
};
