/**
 * The storage backends every backend-agnostic test runs against: ONE list, so a new backend gets the
 * whole suite (conformance, round trip, dedup, corruption, interrupted backup, locks, prune) by adding
 * one entry. Each entry offers two views of a fresh, empty location:
 * - `create()`: a repository URL plus the environment the CLI needs (credentials), for tests that drive
 *   the real CLI or `openBackend`;
 * - `direct()`: a Backend object tuned for the conformance suite (small parts so multi-part paths run,
 *   small list pages, quick retries), wrapped as `openBackend` wraps it (retry, timeout, limit), plus
 *   the secrets that must never leak.
 *
 * Peers: local needs nothing; azure needs Azurite (test/env/azurite.ts); s3 needs versitygw
 * (test/env/s3.ts). Each peer is started once per test process, on first use, and stopped at its end.
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import type { Backend } from '../../src/core/storage/backend.ts';
import { LocalBackend } from '../../src/core/storage/local.ts';
import { AzureBackend, type AzureBackendOptions } from '../../src/core/storage/azure.ts';
import { S3Backend, type S3BackendOptions } from '../../src/core/storage/s3.ts';
import { wrapCloudBackend, wrapLocalBackend } from '../../src/core/storage/open.ts';
import { startAzurite, AZURITE_ACCOUNT, AZURITE_KEY, type Azurite } from './azurite.ts';
import { startS3, type S3Server } from './s3.ts';
import { tempDir } from './index.ts';

export interface LocationOptions {
  listPageSize?: number;
  /** Reach the server through this base URL instead (a fault proxy in front of it). */
  endpointBase?: string;
  /** Reuse an existing container/bucket name (to see one location both directly and via a proxy). */
  name?: string;
  /** Deadline of one request (the TimeoutBackend's), in ms. */
  timeoutMs?: number;
}

export interface BackendLocation {
  /** Repository URL as an operator would type it. */
  url: string;
  backend: Backend;
  /** Secrets in play, which must never show up in `location`, logs or errors. */
  secrets: string[];
  cleanup(): Promise<void>;
}

export interface BackendUnderTest {
  name: string;
  /**
   * Sets up an empty location; returns its URL, extra environment for the CLI, and a cleanup.
   * `viaEndpoint` (cloud only) makes the URL/env reach the server through another base URL (a fault proxy);
   * `directEnv`/`directUrl` then still reach it straight.
   */
  create(options?: { viaEndpoint?: string }): Promise<{
    url: string;
    env: NodeJS.ProcessEnv;
    cleanup(): Promise<void>;
    directUrl?: string;
    directEnv?: NodeJS.ProcessEnv;
  }>;
  /** A Backend on a fresh empty location; `create()` not yet called. */
  direct(options?: LocationOptions): Promise<BackendLocation>;
  /** `http://127.0.0.1:PORT` of the real server, for putting a fault proxy in front (cloud only). */
  upstream?(): Promise<string>;
}

let azurite: Promise<Azurite> | undefined;
let s3: Promise<S3Server> | undefined;

// Registered when this module is first imported, i.e. on the root test of the importing file, so it
// runs once after every test of that file (a hook registered inside a test would run after that test).
after(async () => {
  await (await azurite?.catch(() => undefined))?.stop();
  await (await s3?.catch(() => undefined))?.stop();
});

export function sharedAzurite(): Promise<Azurite> {
  azurite ??= startAzurite();
  return azurite;
}

export function sharedS3(): Promise<S3Server> {
  s3 ??= startS3();
  return s3;
}

/** Quick retries so fault tests end fast; still exponential with jitter. */
export const TEST_RETRY = { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200, maxElapsedMs: 20_000 };

const wrapForTest = (backend: Backend, options: LocationOptions) =>
  wrapCloudBackend(backend, { retry: TEST_RETRY, timeout: { timeoutMs: options.timeoutMs } });

const fresh = (prefix = 'lb') => `${prefix}-${randomBytes(6).toString('hex')}`;

export const localBackend: BackendUnderTest = {
  name: 'local',
  async create() {
    const dir = await tempDir('lifeboat-repo-');
    return { url: path.join(dir.path, 'repo'), env: {}, cleanup: dir.cleanup };
  },
  async direct() {
    const dir = await tempDir('lifeboat-repo-');
    const url = path.join(dir.path, 'repo');
    return { url, backend: wrapLocalBackend(new LocalBackend(url)), secrets: [], cleanup: dir.cleanup };
  },
};

export const azureBackend: BackendUnderTest = {
  name: 'azure (Azurite)',
  async create(options = {}) {
    const az = await sharedAzurite();
    const container = fresh();
    const url = `azure://${AZURITE_ACCOUNT}/${container}/repo`;
    const directEnv = { AZURE_STORAGE_CONNECTION_STRING: az.connectionString };
    return {
      url,
      env: options.viaEndpoint
        ? {
            AZURE_STORAGE_CONNECTION_STRING: az.connectionStringFor(
              `${options.viaEndpoint}/${AZURITE_ACCOUNT}`,
            ),
          }
        : directEnv,
      directUrl: url,
      directEnv,
      async cleanup() {
        await new AzureBackend(`azure://${AZURITE_ACCOUNT}/${container}`, {
          connectionString: az.connectionString,
        }).container
          .deleteIfExists()
          .catch(() => {});
      },
    };
  },
  async direct(options = {}) {
    const az = await sharedAzurite();
    const url = `azure://${AZURITE_ACCOUNT}/${options.name ?? fresh()}/repo`;
    const opts: AzureBackendOptions = {
      connectionString: options.endpointBase
        ? az.connectionStringFor(`${options.endpointBase}/${AZURITE_ACCOUNT}`)
        : az.connectionString,
      blockSize: 4 * 1024 * 1024,
      listPageSize: options.listPageSize,
      env: {},
    };
    const azure = new AzureBackend(url, opts);
    return {
      url,
      backend: wrapForTest(azure, options),
      secrets: [AZURITE_KEY],
      async cleanup() {
        await azure.container.deleteIfExists().catch(() => {});
      },
    };
  },
  async upstream() {
    return `http://127.0.0.1:${(await sharedAzurite()).port}`;
  },
};

export const s3Backend: BackendUnderTest = {
  name: 's3 (versitygw)',
  async create(options = {}) {
    const srv = await sharedS3();
    const bucket = fresh();
    const urlFor = (endpoint: string) =>
      `s3://${bucket}/repo?endpoint=${encodeURIComponent(endpoint)}&region=${srv.region}&path-style=true`;
    const env = {
      AWS_ACCESS_KEY_ID: srv.accessKeyId,
      AWS_SECRET_ACCESS_KEY: srv.secretAccessKey,
      AWS_REGION: srv.region,
    };
    return {
      url: urlFor(options.viaEndpoint ?? srv.endpoint),
      env,
      directUrl: urlFor(srv.endpoint),
      directEnv: env,
      async cleanup() {},
    };
  },
  async direct(options = {}) {
    const srv = await sharedS3();
    const endpoint = options.endpointBase ?? srv.endpoint;
    const url = `s3://${options.name ?? fresh()}/repo?endpoint=${encodeURIComponent(endpoint)}&region=${srv.region}&path-style=true`;
    const opts: S3BackendOptions = {
      credentials: { accessKeyId: srv.accessKeyId, secretAccessKey: srv.secretAccessKey },
      partSize: 5 * 1024 * 1024,
      listPageSize: options.listPageSize,
    };
    const s3 = new S3Backend(url, opts);
    return { url, backend: wrapForTest(s3, options), secrets: [srv.secretAccessKey], async cleanup() {} };
  },
  async upstream() {
    return (await sharedS3()).endpoint;
  },
};

export const BACKENDS: BackendUnderTest[] = [localBackend, azureBackend, s3Backend];
