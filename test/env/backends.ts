/**
 * The one list of storage backends that backend-agnostic tests run against. A test file imports
 * `cloudBackends` (or one entry) and gets fresh, empty repository locations on a real peer; the peer is
 * started once per test process, on first use, and stopped when the process exits.
 *
 * - azure: Azurite (test/env/azurite.ts), a new container per location.
 * - s3: versitygw (test/env/s3.ts), a new bucket per location.
 */
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import type { Backend } from '../../src/core/storage/backend.ts';
import { AzureBackend, type AzureBackendOptions } from '../../src/core/storage/azure.ts';
import { S3Backend, type S3BackendOptions } from '../../src/core/storage/s3.ts';
import { startAzurite, AZURITE_ACCOUNT, AZURITE_KEY, type Azurite } from './azurite.ts';
import { startS3, type S3Server } from './s3.ts';

export interface LocationOptions {
  listPageSize?: number;
  /** Reach the server through this base URL instead (a fault proxy in front of it). */
  endpointBase?: string;
  /** Reuse an existing container/bucket name (to look at the same location directly and via a proxy). */
  name?: string;
  tryTimeoutMs?: number;
}

export interface BackendLocation {
  /** Repository URL as an operator would type it. */
  url: string;
  backend: Backend;
  /** Secrets in play, which must never show up in `location`, logs or errors. */
  secrets: string[];
  cleanup(): Promise<void>;
}

export interface BackendKind {
  name: string;
  /** A fresh empty location; `create()` not yet called. */
  newLocation(options?: LocationOptions): Promise<BackendLocation>;
  /** `http://127.0.0.1:PORT` of the real server, for putting a fault proxy in front. */
  upstream(): Promise<string>;
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

/** Test tuning: small parts so the multi-part paths run, quick retries so fault tests end fast. */
export const TEST_RETRY = { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200, maxElapsedMs: 20_000 };

export const azureKind: BackendKind = {
  name: 'azure (Azurite)',
  async newLocation(options = {}) {
    const az = await sharedAzurite();
    const container = options.name ?? `lb-${randomBytes(6).toString('hex')}`;
    const url = `azure://${AZURITE_ACCOUNT}/${container}/repo`;
    const opts: AzureBackendOptions = {
      connectionString: options.endpointBase ? az.connectionStringFor(`${options.endpointBase}/${AZURITE_ACCOUNT}`) : az.connectionString,
      tryTimeoutMs: options.tryTimeoutMs,
      blockSize: 4 * 1024 * 1024,
      listPageSize: options.listPageSize,
      retry: TEST_RETRY,
      env: {},
    };
    const backend = new AzureBackend(url, opts);
    return {
      url,
      backend,
      secrets: [AZURITE_KEY],
      async cleanup() {
        await backend.container.deleteIfExists().catch(() => {});
      },
    };
  },
  async upstream() {
    return `http://127.0.0.1:${(await sharedAzurite()).port}`;
  },
};

export const s3Kind: BackendKind = {
  name: 's3 (versitygw)',
  async newLocation(options = {}) {
    const srv = await sharedS3();
    const bucket = options.name ?? `lb-${randomBytes(6).toString('hex')}`;
    const endpoint = options.endpointBase ?? srv.endpoint;
    const url = `s3://${bucket}/repo?endpoint=${encodeURIComponent(endpoint)}&region=${srv.region}&path-style=true`;
    const opts: S3BackendOptions = {
      tryTimeoutMs: options.tryTimeoutMs,
      credentials: { accessKeyId: srv.accessKeyId, secretAccessKey: srv.secretAccessKey },
      partSize: 5 * 1024 * 1024,
      listPageSize: options.listPageSize,
      retry: TEST_RETRY,
    };
    const backend = new S3Backend(url, opts);
    return { url, backend, secrets: [srv.secretAccessKey], async cleanup() {} };
  },
  async upstream() {
    return (await sharedS3()).endpoint;
  },
};

export const cloudBackends: BackendKind[] = [azureKind, s3Kind];
