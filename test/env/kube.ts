/**
 * A real Kubernetes API server for the tests, envtest-style: etcd + kube-apiserver (built from the Go module
 * proxy by scripts/tools/kube.ts) on free loopback ports, in a temporary directory.
 *
 * - TLS: kube-apiserver generates its own self-signed serving certificate and CA into --cert-dir (valid for
 *   127.0.0.1); the kubeconfig trusts that CA. TLS checks are never disabled.
 * - Authentication: a static token file holds the admin identity (group system:masters) and any extra static
 *   users a test asks for; ServiceAccount tokens (TokenRequest API, signed with a key generated here) give
 *   limited identities, the way Lifeboat runs inside a cluster.
 * - Authorization: RBAC only, so a missing permission is a real 403 from the real authorizer.
 * - CRDs: CSI snapshots (snapshot.storage.k8s.io/v1) and cert-manager, as shipped upstream, installed and
 *   waited for until Established and served.
 *
 * NO CONTROLLERS RUN. There is no kube-controller-manager, scheduler, kubelet or CSI snapshot controller:
 * Deployments create no Pods, PVCs are not bound, VolumeSnapshots never become ready, deleted Namespaces stay
 * Terminating. Tests play those controllers' parts explicitly with the helpers in test/env/kube-controllers.ts.
 */
import { KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import YAML from 'yaml';
import { ensureTool } from '../../scripts/tools/toolbox.ts';
import { etcdTool, kubeApiserverTool, kubeCrdsTool } from '../../scripts/tools/kube.ts';
import { freePort, startServer, tempDir, type RunningServer } from './index.ts';

export interface StaticUser {
  name: string;
  groups?: string[];
}

export interface KubeTestOptions {
  /** Extra static-token users (tokens are generated; see `tokens`). */
  users?: StaticUser[];
  /** Install the CSI snapshot and cert-manager CRDs (default true). */
  crds?: boolean;
}

export interface KubeTestCluster {
  /** https://127.0.0.1:PORT */
  server: string;
  /** PEM of the API server's CA (self-generated). */
  caPem: string;
  /** Admin kubeconfig (0600) in the cluster's temporary directory: context `admin`. */
  kubeconfigPath: string;
  /** Static user name -> bearer token (includes `admin`). */
  tokens: Record<string, string>;
  dir: string;
  /** A KubeConfig for the admin identity. */
  adminConfig(): KubeConfig;
  /** A KubeConfig object for a bearer token. */
  configFor(token: string, namespace?: string): KubeConfig;
  /**
   * Writes a kubeconfig with one context per entry (`current` selects the current one) and returns its
   * path. Used by CLI tests to exercise --kubeconfig and --context.
   */
  writeKubeconfig(
    file: string,
    contexts: { name: string; token: string; namespace?: string }[],
    current: string,
  ): Promise<string>;
  /** Creates the ServiceAccount if missing and returns a fresh token for it (TokenRequest API, 1 hour). */
  serviceAccountToken(namespace: string, name: string): Promise<string>;
  /** The last lines of the API server's log (for failure messages). */
  apiserverLog(): Promise<string>;
  stop(): Promise<void>;
}

/** Sends one request to the API server with a bearer token; resolves with status and parsed body. */
export function rawRequest(
  cluster: Pick<KubeTestCluster, 'server' | 'caPem'>,
  token: string,
  method: string,
  urlPath: string,
  body?: unknown,
  contentType = 'application/json',
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped JSON from the server
): Promise<{ status: number; body: any }> {
  const url = new URL(urlPath, cluster.server);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        ca: cluster.caPem,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': contentType }),
        },
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* plain text, e.g. /readyz */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} timed out`)));
    req.on('error', reject);
    if (body !== undefined) req.end(typeof body === 'string' ? body : JSON.stringify(body));
    else req.end();
  });
}

async function pollUntil<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `${what}: not ready after ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

function kubeconfigYaml(
  server: string,
  caPem: string,
  contexts: { name: string; token: string; namespace?: string }[],
  current: string,
): string {
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'lifeboat-test',
        cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') },
      },
    ],
    users: contexts.map((c) => ({ name: c.name, user: { token: c.token } })),
    contexts: contexts.map((c) => ({
      name: c.name,
      context: { cluster: 'lifeboat-test', user: c.name, ...(c.namespace ? { namespace: c.namespace } : {}) },
    })),
    'current-context': current,
  });
}

export async function startKube(options: KubeTestOptions = {}): Promise<KubeTestCluster> {
  const [etcdDir, apiDir] = await Promise.all([ensureTool(etcdTool), ensureTool(kubeApiserverTool)]);
  const crdDir = options.crds === false ? undefined : path.join(await ensureTool(kubeCrdsTool), 'crds');
  const dir = await tempDir('lifeboat-kube-');
  const servers: RunningServer[] = [];
  const stopAll = async () => {
    for (const s of servers.reverse()) await s.stop();
    await dir.cleanup();
  };
  try {
    // etcd: one member, loopback only; fsync off because the data is thrown away after the test.
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${clientPort}`;
    servers.push(
      await startServer({
        name: 'etcd',
        command: path.join(etcdDir, 'bin', 'etcd'),
        args: [
          '--name=default',
          `--data-dir=${path.join(dir.path, 'etcd')}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
          `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
          '--unsafe-no-fsync',
          '--log-level=warn',
        ],
        logFile: path.join(dir.path, 'etcd.log'),
        ready: async () => {
          await pollUntil('etcd /health', 60_000, async () => {
            const res = await fetch(`${etcdUrl}/health`);
            const body = (await res.json()) as { health?: string };
            return body.health === 'true' ? true : undefined;
          });
        },
      }),
    );

    // Identities: the static token file is read once at start, so every static user is created here.
    const tokens: Record<string, string> = { admin: randomBytes(24).toString('hex') };
    const lines = [`${tokens.admin},admin,uid-admin,"system:masters"`];
    for (const u of options.users ?? []) {
      tokens[u.name] = randomBytes(24).toString('hex');
      lines.push(
        `${tokens[u.name]},${u.name},uid-${u.name}${u.groups?.length ? `,"${u.groups.join(',')}"` : ''}`,
      );
    }
    const tokenFile = path.join(dir.path, 'tokens.csv');
    await writeFile(tokenFile, lines.join('\n') + '\n', { mode: 0o600 });
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = path.join(dir.path, 'sa.key');
    const saPub = path.join(dir.path, 'sa.pub');
    await writeFile(saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(saPub, publicKey.export({ type: 'spki', format: 'pem' }));

    const port = await freePort();
    const server = `https://127.0.0.1:${port}`;
    const certDir = path.join(dir.path, 'certs');
    await mkdir(certDir);
    const certFile = path.join(certDir, 'apiserver.crt');
    let caPem = '';
    servers.push(
      await startServer({
        name: 'kube-apiserver',
        command: path.join(apiDir, 'bin', 'kube-apiserver'),
        args: [
          `--etcd-servers=${etcdUrl}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${port}`,
          `--cert-dir=${certDir}`,
          `--token-auth-file=${tokenFile}`,
          '--authorization-mode=RBAC',
          '--service-cluster-ip-range=10.96.0.0/24',
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${saPub}`,
          `--service-account-signing-key-file=${saKey}`,
          // Without a ServiceAccount controller no `default` ServiceAccount exists; the admission plugin
          // would then reject every Pod. envtest disables it for the same reason.
          '--disable-admission-plugins=ServiceAccount',
          '--allow-privileged=true',
          '--enable-priority-and-fairness=false',
          '--profiling=false',
          '--v=1',
        ],
        logFile: path.join(dir.path, 'kube-apiserver.log'),
        ready: async () => {
          caPem = await pollUntil('kube-apiserver self-signed certificate', 120_000, async () =>
            existsSync(certFile) ? await readFile(certFile, 'utf8') : undefined,
          );
          await pollUntil('kube-apiserver /readyz', 180_000, async () => {
            // Read again each time: the first read may have caught the file half-written (the serving
            // certificate without the CA after it), which fails every TLS check after it.
            caPem = await readFile(certFile, 'utf8');
            const res = await rawRequest({ server, caPem }, tokens.admin, 'GET', '/readyz');
            return res.status === 200 ? true : undefined;
          });
          return;
        },
      }),
    );

    const kubeconfigPath = path.join(dir.path, 'kubeconfig');
    await writeFile(
      kubeconfigPath,
      kubeconfigYaml(server, caPem, [{ name: 'admin', token: tokens.admin }], 'admin'),
      { mode: 0o600 },
    );
    const configFor = (token: string, namespace?: string) => {
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigYaml(server, caPem, [{ name: 'ctx', token, namespace }], 'ctx'));
      return kc;
    };
    const cluster: KubeTestCluster = {
      server,
      caPem,
      kubeconfigPath,
      tokens,
      dir: dir.path,
      adminConfig: () => configFor(tokens.admin),
      configFor,
      async writeKubeconfig(file, contexts, current) {
        await writeFile(file, kubeconfigYaml(server, caPem, contexts, current), { mode: 0o600 });
        return file;
      },
      async serviceAccountToken(namespace, name) {
        const sa = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } };
        const created = await rawRequest(
          cluster,
          tokens.admin,
          'POST',
          `/api/v1/namespaces/${namespace}/serviceaccounts`,
          sa,
        );
        if (created.status !== 201 && created.status !== 409)
          throw new Error(`create ServiceAccount ${namespace}/${name}: ${JSON.stringify(created.body)}`);
        const res = await rawRequest(
          cluster,
          tokens.admin,
          'POST',
          `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
          {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: { expirationSeconds: 3600 },
          },
        );
        if (res.status !== 201)
          throw new Error(`TokenRequest for ${namespace}/${name}: ${JSON.stringify(res.body)}`);
        return res.body.status.token as string;
      },
      apiserverLog: () => servers[1].tail(),
      stop: stopAll,
    };
    if (crdDir) await installCrds(cluster, crdDir);
    return cluster;
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/** Creates every CRD in `crdDir` and waits until each is Established and its API group is served. */
export async function installCrds(cluster: KubeTestCluster, crdDir: string): Promise<void> {
  // Raw JSON, not client-node's typed API: its model serializer drops `x-kubernetes-*` schema keys.
  const crds: V1CustomResourceDefinition[] = [];
  for (const f of (await readdir(crdDir)).sort()) {
    if (!f.endsWith('.yaml')) continue;
    for (const doc of YAML.parseAllDocuments(await readFile(path.join(crdDir, f), 'utf8'))) {
      const obj = doc.toJS() as V1CustomResourceDefinition | null;
      if (obj?.kind === 'CustomResourceDefinition') crds.push(obj);
    }
  }
  for (const crd of crds) {
    const res = await rawRequest(
      cluster,
      cluster.tokens.admin,
      'POST',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      crd,
    );
    if (res.status !== 201)
      throw new Error(
        `create CRD ${crd.metadata?.name}: ${res.status} ${JSON.stringify(res.body).slice(0, 500)}`,
      );
  }
  for (const crd of crds) {
    const name = crd.metadata!.name!;
    await pollUntil(`CRD ${name} Established`, 60_000, async () => {
      const got = await rawRequest(
        cluster,
        cluster.tokens.admin,
        'GET',
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
      );
      const conditions = (got.body?.status?.conditions ?? []) as { type: string; status: string }[];
      return conditions.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
    });
    // Established can precede serving by a moment (discovery, then the watch cache answering 429 "storage
    // is (re)initializing"): wait until a list of the resource succeeds.
    const version = crd.spec.versions.find((v) => v.storage)!.name;
    await pollUntil(`list of ${name}`, 60_000, async () => {
      const res = await rawRequest(
        cluster,
        cluster.tokens.admin,
        'GET',
        `/apis/${crd.spec.group}/${version}/${crd.spec.names.plural}`,
      );
      return res.status === 200 ? true : undefined;
    });
  }
}
