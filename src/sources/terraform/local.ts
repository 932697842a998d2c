/**
 * Terraform's local files in a working directory: the state of the default workspace
 * (`terraform.tfstate`), of every other workspace (`terraform.tfstate.d/<ws>/terraform.tfstate`), and the
 * backend configuration in `.terraform/` (`terraform.tfstate`, which may hold an `access_key` or
 * `sas_token`, and `environment`, the selected workspace). Providers and modules under `.terraform/` are
 * downloads that `terraform init` fetches again, so they are not captured.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fromSystemError } from '../../core/errors.ts';

export type LocalFileKind = 'state' | 'backend-config' | 'environment';

export interface LocalFile {
  /** Relative to the working directory, with `/`. */
  rel: string;
  kind: LocalFileKind;
  /** For `state`: the workspace it belongs to. */
  workspace?: string;
}

export const STATE_FILE = 'terraform.tfstate';
export const WORKSPACES_DIR = 'terraform.tfstate.d';

/** Where a workspace's state lives in a working directory (Terraform's local backend layout). */
export function localStatePath(workspace: string): string {
  return workspace === 'default' ? STATE_FILE : `${WORKSPACES_DIR}/${workspace}/${STATE_FILE}`;
}

async function exists(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw fromSystemError(e, `reading ${p}`);
  }
}

/** The Terraform files present in `dir`, in a stable order. */
export async function findLocalFiles(dir: string): Promise<LocalFile[]> {
  const found: LocalFile[] = [];
  if (await exists(path.join(dir, STATE_FILE)))
    found.push({ rel: STATE_FILE, kind: 'state', workspace: 'default' });
  let workspaces: string[] = [];
  try {
    workspaces = (await readdir(path.join(dir, WORKSPACES_DIR))).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(e, `reading ${dir}`);
  }
  for (const ws of workspaces)
    if (await exists(path.join(dir, localStatePath(ws))))
      found.push({ rel: localStatePath(ws), kind: 'state', workspace: ws });
  if (await exists(path.join(dir, '.terraform', STATE_FILE)))
    found.push({ rel: `.terraform/${STATE_FILE}`, kind: 'backend-config' });
  if (await exists(path.join(dir, '.terraform', 'environment')))
    found.push({ rel: '.terraform/environment', kind: 'environment' });
  return found;
}
