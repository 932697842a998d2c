/**
 * A small Kubernetes REST client. @kubernetes/client-node loads the configuration (kubeconfig file,
 * `--context`, in-cluster ServiceAccount) and supplies TLS and credentials; requests are sent as raw JSON
 * because client-node's typed models drop fields they do not know (e.g. `x-kubernetes-*` keys in CRD schemas),
 * which a backup tool must never do.
 *
 * client-node is imported only when a Kubernetes command connects: loading it costs ~90 MiB of RSS,
 * which every other command (a MongoDB backup with its 300 MiB budget above all) should not pay.
 *
 * Every failure becomes a LifeboatError: 403 names the exact verb/resource/namespace RBAC refused and points
 * at the shipped ClusterRole; 401 is an authentication problem; connection errors are UNREACHABLE.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import type https from 'node:https';
import type http from 'node:http';
import { LifeboatError, fromSystemError } from '../../core/errors.ts';
import { withRetry } from '../../core/retry.ts';
import type { RetryOptions } from '../../core/storage/wrappers/retrying.ts';
import type { KubeObject } from './objects.ts';

export interface KubeConnectOptions {
  kubeconfig?: string;
  context?: string;
  /** Use the Pod's ServiceAccount even if a kubeconfig exists. */
  inCluster?: boolean;
}

export interface ResourceInfo {
  group: string;
  version: string;
  /** Plural resource name, e.g. `deployments`. */
  resource: string;
  kind: string;
  namespaced: boolean;
  verbs: string[];
}

export const RBAC_HINT =
  'grant it to Lifeboat (deploy/rbac/lifeboat-clusterrole.yaml) or run with an identity that has it';

export async function loadKubeConfig(
  opts: KubeConnectOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  // LIFEBOAT_SERVICEACCOUNT_ROOT: a directory standing in for `/` when reading the Pod's ServiceAccount
  // files (var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}). Not an operator
  // setting: it lets the tests run the in-cluster path as a Pod sees it, without being a Pod.
  const root = (env.LIFEBOAT_SERVICEACCOUNT_ROOT ?? '').replace(/\/$/, '');
  try {
    const inCluster =
      !!env.KUBERNETES_SERVICE_HOST &&
      existsSync(`${root}/var/run/secrets/kubernetes.io/serviceaccount/token`);
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else if (opts.inCluster || (inCluster && !env.KUBECONFIG)) {
      if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT)
        throw new Error('KUBERNETES_SERVICE_HOST/PORT are not set: this is not a Pod');
      if (!existsSync(`${root}/var/run/secrets/kubernetes.io/serviceaccount/token`))
        throw new Error(
          `no ServiceAccount token at ${root}/var/run/secrets/kubernetes.io/serviceaccount/token (automountServiceAccountToken off?)`,
        );
      kc.loadFromCluster(root);
    } else if (env.KUBECONFIG) kc.loadFromFile(env.KUBECONFIG.split(':')[0]);
    else kc.loadFromDefault();
  } catch (e) {
    throw new LifeboatError('CONFIG', `cannot load the Kubernetes configuration: ${(e as Error).message}`, {
      hint: 'pass --kubeconfig FILE, set KUBECONFIG, or run inside the cluster with a ServiceAccount',
    });
  }
  if (opts.context) {
    if (!kc.getContexts().some((c) => c.name === opts.context)) {
      throw new LifeboatError('CONFIG', `kubeconfig has no context "${opts.context}"`, {
        hint: `known contexts: ${
          kc
            .getContexts()
            .map((c) => c.name)
            .join(', ') || 'none'
        }`,
      });
    }
    kc.setCurrentContext(opts.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new LifeboatError('CONFIG', 'the Kubernetes configuration names no cluster', {
      hint: 'pass --kubeconfig FILE or --context NAME',
    });
  }
  return kc;
}

interface StatusBody {
  kind?: string;
  message?: string;
  reason?: string;
  details?: { name?: string; kind?: string; causes?: { message?: string; field?: string }[] };
}

export class KubeApiError extends LifeboatError {
  readonly status: number;
  readonly reason: string;
  /** The server's Retry-After, for a transient answer. */
  retryAfterMs?: number;
  constructor(status: number, reason: string, ...rest: ConstructorParameters<typeof LifeboatError>) {
    super(...rest);
    this.status = status;
    this.reason = reason;
  }
}

export function isNotFound(e: unknown): boolean {
  return e instanceof KubeApiError && e.status === 404;
}

export function isConflict(e: unknown): boolean {
  return e instanceof KubeApiError && e.status === 409;
}

/** The path of a resource collection or object: /api/v1/namespaces/ns/pods/name/status. */
export function resourcePath(
  r: Pick<ResourceInfo, 'group' | 'version' | 'resource' | 'namespaced'>,
  namespace?: string,
  name?: string,
  sub?: string,
): string {
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  const ns = r.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${base}${ns}/${r.resource}${name ? `/${encodeURIComponent(name)}` : ''}${sub ? `/${sub}` : ''}`;
}

export class KubeClient {
  readonly config: KubeConfig;
  readonly server: string;
  private discovery = new Map<string, Promise<ResourceInfo[] | undefined>>();
  /** Overrides of the retry policy (tests shorten the waits). */
  retry: RetryOptions = {};

  constructor(config: KubeConfig) {
    this.config = config;
    this.server = config.getCurrentCluster()!.server;
  }

  static async connect(opts: KubeConnectOptions, env?: NodeJS.ProcessEnv): Promise<KubeClient> {
    return new KubeClient(await loadKubeConfig(opts, env));
  }

  /** The namespace of the current context (or the in-cluster ServiceAccount's), else `default`. */
  defaultNamespace(): string {
    const ctx = this.config.getContextObject(this.config.getCurrentContext());
    return ctx?.namespace ?? 'default';
  }

  /**
   * One request. `what` describes the operation for error messages ("list secrets in rocketchat").
   * Resolves with the parsed JSON body.
   */
  async request<T = unknown>(
    method: string,
    path: string,
    what: string,
    body?: unknown,
    opts: { contentType?: string; query?: Record<string, string | undefined> } = {},
  ): Promise<T> {
    // The server URL may carry a path prefix (e.g. behind a proxy): append, do not resolve.
    const url = new URL(this.server.replace(/\/$/, '') + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const options: https.RequestOptions = { method, headers: { accept: 'application/json' } };
    await this.config.applyToHTTPSOptions(options);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    if (payload !== undefined)
      options.headers = { ...options.headers, 'content-type': opts.contentType ?? 'application/json' };
    // Loaded on first use: node:http and node:https add ~3.7 MiB to a heap every command's collections
    // mark, and most commands never talk to Kubernetes (docs/performance.md).
    const lib: typeof https | typeof http = (
      await import(url.protocol === 'http:' ? 'node:http' : 'node:https')
    ).default;
    // Transient failures go through the shared retry (core/retry.ts). What may be repeated depends on
    // whether the server may already have acted: 429 and 503 mean it did not (priority and fairness,
    // a cache still initialising), so any verb; other 5xx answers and connections lost mid-request may
    // follow a write that landed, so only verbs whose repetition gives the same result (GET, PUT,
    // PATCH with server-side apply or a merge patch, DELETE — whose 404 counts as done) are repeated.
    // A create is repeated only when the connection was refused: the request never left.
    const repeatable = method !== 'POST';
    return withRetry(
      async () => {
        let res: { status: number; text: string; retryAfter: number };
        try {
          res = await this.send(lib, url, options, payload, what);
        } catch (e) {
          const sysCode = (e as { cause?: { code?: string } }).cause?.code;
          if (e instanceof LifeboatError && e.transient && !repeatable && sysCode !== 'ECONNREFUSED')
            throw new LifeboatError(e.code, `${e.message}; not repeated, the create may have happened`, {
              hint: 'check whether the object exists, then run again',
              cause: e,
            });
          throw e;
        }
        let parsed: unknown;
        try {
          parsed = res.text ? JSON.parse(res.text) : undefined;
        } catch {
          parsed = res.text;
        }
        if (res.status >= 200 && res.status < 300) return parsed as T;
        const transient =
          res.status === 429 || res.status === 503 || (repeatable && [500, 502, 504].includes(res.status));
        const err = this.toError(res.status, parsed as StatusBody | string, what, transient);
        if (transient) err.retryAfterMs = Math.min(5, Math.max(0.2, res.retryAfter)) * 1000;
        throw err;
      },
      {
        ...this.retry,
        waitFor: (e) =>
          e instanceof KubeApiError && e.retryAfterMs !== undefined && e.status === 429
            ? e.retryAfterMs
            : undefined,
      },
    );
  }

  private async send(
    lib: typeof https | typeof http,
    url: URL,
    options: https.RequestOptions,
    payload: string | undefined,
    what: string,
  ): Promise<{ status: number; text: string; retryAfter: number }> {
    return new Promise<{ status: number; text: string; retryAfter: number }>((resolve, reject) => {
      const req = lib.request(url, { ...options, timeout: 60_000 }, (res) => {
        let t = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (t += d));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: t,
            retryAfter: Number(res.headers['retry-after'] ?? 1) || 1,
          }),
        );
        res.on('error', reject);
      });
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })),
      );
      req.on('error', reject);
      req.end(payload);
    }).catch((e: unknown) => {
      throw fromSystemError(e, `Kubernetes API ${this.server} (${what})`);
    });
  }

  private toError(status: number, body: StatusBody | string, what: string, transient: boolean): KubeApiError {
    const msg = typeof body === 'string' ? body.trim().slice(0, 300) : (body?.message ?? '');
    const reason = typeof body === 'string' ? '' : (body?.reason ?? '');
    switch (status) {
      case 401:
        return new KubeApiError(
          status,
          reason,
          'AUTH',
          `${what}: the API server rejected the credentials (401)`,
          {
            hint: 'refresh the token or check the kubeconfig user / ServiceAccount',
          },
        );
      case 403:
        return new KubeApiError(status, reason, 'PERMISSION', `${what}: forbidden by RBAC: ${msg}`, {
          hint: RBAC_HINT,
        });
      case 404:
        return new KubeApiError(status, reason, 'NOT_FOUND', `${what}: not found${msg ? ` (${msg})` : ''}`);
      case 409:
        return new KubeApiError(status, reason, 'CONFLICT', `${what}: conflict: ${msg}`, {
          hint: 'the object exists or changed meanwhile; run again',
        });
      case 422:
      case 400:
        return new KubeApiError(status, reason, 'USAGE', `${what}: rejected by the API server: ${msg}`, {
          hint: 'the object is not valid for this cluster (API version or schema differs)',
        });
      default:
        return new KubeApiError(
          status,
          reason,
          status >= 500 || status === 429 ? 'UNREACHABLE' : 'INTERNAL',
          `${what}: HTTP ${status}: ${msg}`,
          { hint: 'check the API server health and try again', transient },
        );
    }
  }

  /** Resources served for an apiVersion (`v1`, `apps/v1`); undefined when the group/version is not served. */
  async resources(apiVersion: string): Promise<ResourceInfo[] | undefined> {
    let p = this.discovery.get(apiVersion);
    if (!p) {
      const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
      const path = group ? `/apis/${group}/${version}` : `/api/${version}`;
      p = this.request<{ resources: { name: string; kind: string; namespaced: boolean; verbs: string[] }[] }>(
        'GET',
        path,
        `discover ${apiVersion}`,
      )
        .then((list) =>
          list.resources
            .filter((r) => !r.name.includes('/'))
            .map((r) => ({
              group,
              version,
              resource: r.name,
              kind: r.kind,
              namespaced: r.namespaced,
              verbs: r.verbs,
            })),
        )
        .catch((e) => {
          if (isNotFound(e)) return undefined;
          throw e;
        });
      this.discovery.set(apiVersion, p);
    }
    return p;
  }

  /**
   * Every resource the server serves, at each group's preferred version (what `kubectl api-resources`
   * lists, and the version Velero backs up). A group whose discovery fails (an aggregated API whose
   * service is down answers 503) is reported, not fatal: the caller records it as not backed up.
   */
  async discoverAll(): Promise<{
    resources: ResourceInfo[];
    unavailable: { groupVersion: string; reason: string }[];
  }> {
    const core = await this.request<{ versions: string[] }>('GET', '/api', 'discover the core API');
    const groups = await this.request<{
      groups: {
        name: string;
        preferredVersion?: { groupVersion: string };
        versions: { groupVersion: string }[];
      }[];
    }>('GET', '/apis', 'discover API groups');
    const versions = [
      core.versions.includes('v1') ? 'v1' : core.versions[0],
      ...groups.groups.map((g) => g.preferredVersion?.groupVersion ?? g.versions[0]?.groupVersion),
    ].filter((v): v is string => !!v);
    const resources: ResourceInfo[] = [];
    const unavailable: { groupVersion: string; reason: string }[] = [];
    for (const gv of versions) {
      try {
        resources.push(...((await this.resources(gv)) ?? []));
      } catch (e) {
        if (e instanceof KubeApiError && e.status !== 401 && e.status !== 403)
          unavailable.push({ groupVersion: gv, reason: e.message });
        else throw e;
      }
    }
    return { resources, unavailable };
  }

  /** Forgets discovery results (after CRDs were created). */
  resetDiscovery(): void {
    this.discovery.clear();
  }

  async resourceFor(apiVersion: string, kind: string): Promise<ResourceInfo | undefined> {
    return (await this.resources(apiVersion))?.find((r) => r.kind === kind);
  }

  async mustResource(apiVersion: string, kind: string): Promise<ResourceInfo> {
    const r = await this.resourceFor(apiVersion, kind);
    if (!r) {
      throw new LifeboatError('UNSUPPORTED', `the cluster does not serve ${kind} (${apiVersion})`, {
        hint: 'install its CustomResourceDefinition first (a cluster-state restore creates CRDs before their objects)',
      });
    }
    return r;
  }

  /** Lists every object of a resource (all pages), in one namespace or cluster-wide. */
  async list(r: ResourceInfo, namespace?: string, labelSelector?: string): Promise<KubeObject[]> {
    const out: KubeObject[] = [];
    let cont: string | undefined;
    const apiVersion = r.group ? `${r.group}/${r.version}` : r.version;
    do {
      const page = await this.request<{ items: KubeObject[]; metadata?: { continue?: string } }>(
        'GET',
        resourcePath(r, namespace),
        `list ${r.resource}${namespace ? ` in ${namespace}` : ''}`,
        undefined,
        { query: { limit: '500', continue: cont, labelSelector } },
      );
      // List items carry no apiVersion/kind of their own.
      for (const item of page.items) out.push({ ...item, apiVersion, kind: r.kind });
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return out;
  }

  async get(r: ResourceInfo, namespace: string | undefined, name: string): Promise<KubeObject | undefined> {
    try {
      return await this.request<KubeObject>(
        'GET',
        resourcePath(r, namespace, name),
        `get ${r.resource} ${namespace ? `${namespace}/` : ''}${name}`,
      );
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async create(r: ResourceInfo, obj: KubeObject): Promise<KubeObject> {
    return this.request<KubeObject>(
      'POST',
      resourcePath(r, obj.metadata.namespace),
      `create ${r.resource} ${describe(obj)}`,
      obj,
    );
  }

  /** Server-side apply with our field manager; `dryRun` asks the server what the object would become. */
  async apply(
    r: ResourceInfo,
    obj: KubeObject,
    opts: { force?: boolean; dryRun?: boolean; fieldManager?: string } = {},
  ): Promise<KubeObject> {
    return this.request<KubeObject>(
      'PATCH',
      resourcePath(r, obj.metadata.namespace, obj.metadata.name),
      `apply ${r.resource} ${describe(obj)}`,
      obj,
      {
        contentType: 'application/apply-patch+yaml',
        query: {
          fieldManager: opts.fieldManager ?? 'lifeboat',
          force: opts.force ? 'true' : undefined,
          dryRun: opts.dryRun ? 'All' : undefined,
        },
      },
    );
  }

  async mergePatch(
    r: ResourceInfo,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    sub?: string,
  ): Promise<KubeObject> {
    return this.request<KubeObject>(
      'PATCH',
      resourcePath(r, namespace, name, sub),
      `patch ${r.resource}${sub ? `/${sub}` : ''} ${namespace ? `${namespace}/` : ''}${name}`,
      patch,
      {
        contentType: 'application/merge-patch+json',
      },
    );
  }

  async delete(r: ResourceInfo, namespace: string | undefined, name: string): Promise<void> {
    try {
      await this.request(
        'DELETE',
        resourcePath(r, namespace, name),
        `delete ${r.resource} ${namespace ? `${namespace}/` : ''}${name}`,
      );
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
}

export function describe(o: Pick<KubeObject, 'metadata'>): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}
