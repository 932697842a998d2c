/**
 * Turns a repository URL into a Backend. Cloud SDKs are imported lazily so that a local repository never
 * pays for loading them.
 *   ./path, /abs/path, file:///abs/path   local filesystem
 *   azure://ACCOUNT/CONTAINER/PREFIX       Azure Blob Storage
 *   s3://BUCKET/PREFIX                     S3-compatible storage
 */
import { fileURLToPath } from 'node:url';
import { LifeboatError } from '../errors.ts';
import type { Backend } from './backend.ts';
import { LocalBackend } from './local.ts';

type Opener = (location: string, env: NodeJS.ProcessEnv) => Promise<Backend>;

const OPENERS: Record<string, Opener> = {
  file: async (location) => new LocalBackend(fileURLToPath(location)),
};

export async function openBackend(location: string, env: NodeJS.ProcessEnv = process.env): Promise<Backend> {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location);
  if (!m) return new LocalBackend(location);
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
