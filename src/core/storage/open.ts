/**
 * Turns a repository URL into a Backend. Cloud SDKs are imported lazily so that a local repository never
 * pays for loading them.
 *   ./path, /abs/path, file:///abs/path   local filesystem
 *   azure://ACCOUNT/CONTAINER/PREFIX       Azure Blob Storage
 *   s3://BUCKET/PREFIX[?endpoint=URL&region=R&path-style=true]   S3-compatible storage
 * Cloud credentials come from the environment (docs/storage.md): AZURE_STORAGE_CONNECTION_STRING,
 * AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN or DefaultAzureCredential; the AWS SDK default chain.
 * Tuning: LIFEBOAT_AZURE_ACCESS_TIER (Hot|Cool|Cold, packs only), LIFEBOAT_S3_STORAGE_CLASS (packs only),
 * LIFEBOAT_UPLOAD_CONCURRENCY (parts in flight per object), LIFEBOAT_STORAGE_CONCURRENCY (calls in flight
 * per backend).
 *
 * The backends make one attempt per call; what every caller gets is the backend wrapped (see the
 * Backend contract in backend.ts):
 *   cloud:  LimitingBackend → RetryingBackend → TimeoutBackend → AzureBackend / S3Backend
 *   local:  LimitingBackend → LocalBackend (a file system call has nothing to retry and cannot be
 *           timed out; it fails for good or not at all)
 */
import { fileURLToPath } from 'node:url';
import { LifeboatError } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { AzureAccessTier } from './azure.ts';
import { LocalBackend } from './local.ts';
import { DEFAULT_STORAGE_CONCURRENCY, LimitingBackend } from './wrappers/limiting.ts';
import { RetryingBackend, type RetryOptions } from './wrappers/retrying.ts';
import { TimeoutBackend, type TimeoutOptions } from './wrappers/timeout.ts';

export interface WrapOptions {
  retry?: RetryOptions;
  timeout?: TimeoutOptions;
  /** Calls in flight at once (default 8). */
  concurrency?: number;
}

/** A cloud backend as callers get it: deadline per attempt, retries, then the concurrency limit. */
export function wrapCloudBackend(backend: Backend, options: WrapOptions = {}): Backend {
  const timed = new TimeoutBackend(backend, options.timeout);
  return new LimitingBackend(new RetryingBackend(timed, options.retry), options.concurrency);
}

/** A local backend as callers get it: only the concurrency limit. */
export function wrapLocalBackend(backend: Backend, options: WrapOptions = {}): Backend {
  return new LimitingBackend(backend, options.concurrency);
}

type Opener = (location: string, env: NodeJS.ProcessEnv) => Promise<Backend>;

const OPENERS: Record<string, Opener> = {
  file: async (location, env) => {
    // file://relative/path parses "relative" as a host name; say what a file URL needs instead.
    let p: string;
    try {
      p = fileURLToPath(location);
    } catch {
      throw new LifeboatError('USAGE', `${location} is not a local file URL`, {
        hint: 'file URLs take an absolute path (file:///srv/backups/repo); or give the path itself (./repo)',
      });
    }
    return wrapLocalBackend(new LocalBackend(p), wrapFrom(env));
  },
  azure: async (location, env) => {
    const { AzureBackend } = await import('./azure.ts');
    const azure = new AzureBackend(location, {
      env,
      accessTier: (env.LIFEBOAT_AZURE_ACCESS_TIER || undefined) as AzureAccessTier | undefined,
      concurrency: uploadConcurrencyFrom(env),
    });
    return wrapCloudBackend(azure, wrapFrom(env));
  },
  s3: async (location, env) => {
    const { S3Backend } = await import('./s3.ts');
    // The environment handed in wins over the process's (the CLI passes its own); without keys there,
    // the SDK's default chain applies (shared config/SSO, web identity, container/instance metadata).
    const s3 = new S3Backend(location, {
      credentials:
        env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
          ? {
              accessKeyId: env.AWS_ACCESS_KEY_ID,
              secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
              sessionToken: env.AWS_SESSION_TOKEN || undefined,
            }
          : undefined,
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined,
      endpoint: env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined,
      storageClass: env.LIFEBOAT_S3_STORAGE_CLASS || undefined,
      concurrency: uploadConcurrencyFrom(env),
    });
    return wrapCloudBackend(s3, wrapFrom(env));
  },
};

function uploadConcurrencyFrom(env: NodeJS.ProcessEnv): number | undefined {
  return wholeNumberFrom(env, 'LIFEBOAT_UPLOAD_CONCURRENCY', 64, 4);
}

function wrapFrom(env: NodeJS.ProcessEnv): WrapOptions {
  return {
    concurrency: wholeNumberFrom(env, 'LIFEBOAT_STORAGE_CONCURRENCY', 256, DEFAULT_STORAGE_CONCURRENCY),
  };
}

function wholeNumberFrom(
  env: NodeJS.ProcessEnv,
  name: string,
  max: number,
  defaultValue: number,
): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new LifeboatError('CONFIG', `${name}=${JSON.stringify(v)} is not a whole number from 1 to ${max}`, {
      hint: `unset it for the default (${defaultValue}), or set e.g. ${defaultValue * 2}`,
    });
  }
  return n;
}

export async function openBackend(location: string, env: NodeJS.ProcessEnv = process.env): Promise<Backend> {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location);
  if (!m) return wrapLocalBackend(new LocalBackend(location), wrapFrom(env));
  const opener = OPENERS[m[1].toLowerCase()];
  if (!opener) {
    throw new LifeboatError('USAGE', `unsupported repository URL scheme "${m[1]}:" in ${location}`, {
      hint: `use a path, file://, ${Object.keys(OPENERS)
        .filter((s) => s !== 'file')
        .map((s) => `${s}://`)
        .join(', ')}`,
    });
  }
  return opener(location, env);
}
