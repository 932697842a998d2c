/**
 * Terraform state into one `terraform` snapshot, and back. A capture takes a working directory's local
 * files (local.ts) and/or an azurerm backend's state blobs (azurerm.ts); every state's identity (lineage,
 * serial, Terraform version) goes into the snapshot's meta so that `validate` can compare captures
 * without decrypting any state. Restores follow Terraform's `state push` rule (state.ts) and change
 * nothing unless every selected workspace may be written. docs/terraform.md has the operator's view.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LifeboatError, fromSystemError } from '../../core/errors.ts';
import type { Repository } from '../../core/repository/repository.ts';
import { startBackup } from '../../core/repository/backup.ts';
import type { BackupSession, Item, Snapshot } from '../../core/repository/model.ts';
// azurerm.ts is imported only when a backend is named: it loads @azure/storage-blob, which a local
// capture (and every other command: validate imports this file) should not pay for.
import type { AzurermLocation, AzurermStates } from './azurerm.ts';
import { blobOfWorkspace } from './azurerm-layout.ts';
import { findLocalFiles, localStatePath } from './local.ts';
import { parseStateIdentity, replaceRefusal, type LockInfo, type StateIdentity } from './state.ts';

export type StateSource = 'local' | 'azurerm';

/** One workspace's state as captured: recorded in snapshot meta `workspaces` (never resource values). */
export interface WorkspaceCapture {
  source: StateSource;
  /** The working directory (absolute) or `azurerm://ACCOUNT/CONTAINER/KEY`. */
  location: string;
  workspace: string;
  /** The snapshot item holding the state file. */
  item: string;
  /** Absent for an empty state (a blob the backend created only to lock it). */
  lineage?: string;
  serial?: number;
  terraformVersion?: string;
  /** azurerm: the blob's lease as the read saw it (`leased` = Terraform held the lock). */
  leaseState?: string;
  leaseStatus?: string;
  lock?: LockInfo | { raw: string };
}

export interface TerraformBackupOptions {
  dir?: string;
  azurerm?: AzurermLocation;
  tags?: string[];
  session?: BackupSession;
  env?: NodeJS.ProcessEnv;
}

export interface TerraformBackupResult {
  snapshot: Snapshot;
  workspaces: WorkspaceCapture[];
  /** Local files that are not state (`.terraform/terraform.tfstate`, `.terraform/environment`). */
  configFiles: string[];
}

function identityFields(id: StateIdentity | undefined) {
  return id ? { lineage: id.lineage, serial: id.serial, terraformVersion: id.terraformVersion } : {};
}

export async function backupTerraform(
  repo: Repository,
  options: TerraformBackupOptions,
): Promise<TerraformBackupResult> {
  const session = options.session ?? (await startBackup(repo, 'terraform backup'));
  const items: Item[] = [];
  const workspaces: WorkspaceCapture[] = [];
  const configFiles: string[] = [];
  const paths: string[] = [];
  const capturedAt = new Date().toISOString();
  try {
    if (options.dir !== undefined) {
      const dir = path.resolve(options.dir);
      paths.push(dir);
      for (const f of await findLocalFiles(dir)) {
        const abs = path.join(dir, f.rel);
        let bytes: Buffer;
        try {
          bytes = await readFile(abs);
        } catch (e) {
          throw fromSystemError(e, `reading ${abs}`);
        }
        const name = `local/${f.rel}`;
        // Mode 0600 on restore whatever it was: these files hold credentials and resource secrets.
        items.push(await session.addItem({ name, kind: f.kind, meta: { mode: 0o600 } }, bytes, 'file'));
        if (f.kind !== 'state') {
          configFiles.push(name);
          continue;
        }
        workspaces.push({
          source: 'local',
          location: dir,
          workspace: f.workspace!,
          item: name,
          ...identityFields(parseStateIdentity(bytes, abs)),
        });
      }
    }
    if (options.azurerm) {
      const { AzurermStates } = await import('./azurerm.ts');
      const states = new AzurermStates(options.azurerm, options.env);
      paths.push(states.url);
      for (const blob of await states.listStateBlobs()) {
        const c = await states.capture(blob);
        const name = `azurerm/${blob}`;
        items.push(
          await session.addItem(
            { name, kind: 'state', meta: { mode: 0o600, etag: c.etag } },
            c.bytes,
            'file',
          ),
        );
        workspaces.push({
          source: 'azurerm',
          location: states.url,
          workspace: c.workspace,
          item: name,
          ...identityFields(parseStateIdentity(c.bytes, `${states.url} blob ${blob}`)),
          leaseState: c.leaseState,
          leaseStatus: c.leaseStatus,
          ...(c.lock ? { lock: c.lock } : {}),
        });
      }
    }
    const snapshot = await session.commit({
      type: 'terraform',
      tags: options.tags,
      paths,
      meta: {
        capturedAt,
        ...(options.azurerm ? { azurerm: options.azurerm } : {}),
        workspaces,
      },
      items,
      empty: workspaces.length === 0,
      emptyHint:
        'no terraform.tfstate, terraform.tfstate.d/*/terraform.tfstate or azurerm state blob was found: check --dir and --azurerm-account/--azurerm-container/--azurerm-key',
    });
    return { snapshot, workspaces, configFiles };
  } catch (e) {
    await session.abort();
    throw e;
  }
}

/** The workspaces a snapshot recorded (snapshots of `files backup --type terraform` have none). */
export function capturedWorkspaces(snapshot: Snapshot): WorkspaceCapture[] {
  const w = snapshot.meta.workspaces;
  return Array.isArray(w) ? (w as WorkspaceCapture[]) : [];
}

export interface TerraformRestoreOptions {
  /** Write into this working directory (Terraform's local layout)… */
  target?: string;
  /** … or back to the azurerm blobs (the recorded location, or `azurerm` to restore elsewhere). */
  toBlob?: boolean;
  azurerm?: AzurermLocation;
  /** Which captured states a --target restore takes when the snapshot has both. */
  from?: StateSource;
  workspace?: string;
  /** Write even over a different lineage, a higher serial or a held lock. */
  force?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface RestoredWorkspace {
  workspace: string;
  /** The file or `azurerm://…/blob` written. */
  destination: string;
  serial?: number;
  lineage?: string;
  /** The state that was there before, if any. */
  previousSerial?: number;
  previousLineage?: string;
  /** What --force overrode, if anything. */
  overridden?: string;
}

export interface TerraformRestoreResult {
  snapshot: string;
  workspaces: RestoredWorkspace[];
  /** `.terraform/` files written, or kept because the target already had them (see docs/terraform.md). */
  configWritten: string[];
  configKept: string[];
  /** Workspaces whose capture was empty (no state yet): nothing to write. */
  emptySkipped: string[];
}

interface PlannedWrite {
  capture: WorkspaceCapture;
  bytes: Buffer;
  incoming?: StateIdentity;
  current?: StateIdentity;
  refusal?: string;
  write(): Promise<void>;
  destination: string;
}

/** Writes a file through a temporary name, so a failed write never leaves half a state file. */
async function writeAtomically(file: string, bytes: Uint8Array): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.lifeboat-partial`;
  try {
    await writeFile(tmp, bytes, { mode: 0o600 });
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw fromSystemError(e, `writing ${file}`);
  }
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromSystemError(e, `reading ${file}`);
  }
}

function itemNamed(snapshot: Snapshot, name: string): Item {
  const item = snapshot.items.find((i) => i.name === name);
  if (!item)
    throw new LifeboatError(
      'INTEGRITY',
      `snapshot ${snapshot.id.slice(0, 8)} names item ${name} but lacks it`,
    );
  return item;
}

export async function restoreTerraform(
  repo: Repository,
  snapshot: Snapshot,
  options: TerraformRestoreOptions,
): Promise<TerraformRestoreResult> {
  const all = capturedWorkspaces(snapshot);
  if (all.length === 0)
    throw new LifeboatError('USAGE', `snapshot ${snapshot.id.slice(0, 8)} records no Terraform workspaces`, {
      hint: 'a snapshot of `files backup --type terraform` is restored with `lifeboat files restore`',
    });
  const sources = new Set(all.map((w) => w.source));
  let source: StateSource;
  if (options.toBlob) source = 'azurerm';
  else if (options.from) source = options.from;
  else if (sources.size === 1) source = [...sources][0];
  else
    throw new LifeboatError('USAGE', 'the snapshot holds both local and azurerm state', {
      hint: 'choose one with --from local or --from azurerm',
    });
  let selected = all.filter((w) => w.source === source);
  if (selected.length === 0)
    throw new LifeboatError('USAGE', `snapshot ${snapshot.id.slice(0, 8)} holds no ${source} state`, {
      hint: options.toBlob ? 'restore it with --target DIR' : `use --from ${[...sources][0]}`,
    });
  if (options.workspace !== undefined) {
    selected = selected.filter((w) => w.workspace === options.workspace);
    if (selected.length === 0)
      throw new LifeboatError('NOT_FOUND', `workspace ${options.workspace} is not in the snapshot`, {
        hint: `it holds: ${all
          .filter((w) => w.source === source)
          .map((w) => w.workspace)
          .join(', ')}`,
      });
  }

  const plans: PlannedWrite[] = [];
  let states: AzurermStates | undefined;
  if (options.toBlob) {
    const location = options.azurerm ?? (snapshot.meta.azurerm as AzurermLocation | undefined);
    if (!location)
      throw new LifeboatError('USAGE', 'the snapshot does not say which azurerm backend it came from', {
        hint: 'give --azurerm-account, --azurerm-container and --azurerm-key',
      });
    const azurerm = await import('./azurerm.ts');
    states = new azurerm.AzurermStates(location, options.env);
  }
  const emptySkipped: string[] = [];
  for (const capture of selected) {
    const bytes = await repo.readItemBuffer(itemNamed(snapshot, capture.item));
    const incoming = parseStateIdentity(bytes, `${capture.item} in the snapshot`);
    // An empty capture (a blob the backend created only to hold a lock) is no state: writing it would
    // wipe whatever state is there now.
    if (!incoming) {
      emptySkipped.push(capture.workspace);
      continue;
    }
    if (states) {
      const blob = blobOfWorkspace(states.location.key, capture.workspace);
      const current = await states.current(blob);
      const currentId = current.bytes
        ? parseStateIdentity(current.bytes, `${states.url} blob ${blob}`)
        : undefined;
      const refusal = current.leased
        ? `the blob is leased: Terraform holds the lock on workspace ${capture.workspace}`
        : replaceRefusal(incoming, currentId);
      plans.push({
        capture,
        bytes,
        incoming,
        current: currentId,
        refusal,
        destination: `azurerm://${states.location.account}/${states.location.container}/${blob}`,
        write: () => states.write(blob, bytes, current, Boolean(options.force)),
      });
    } else {
      const file = path.join(path.resolve(options.target!), localStatePath(capture.workspace));
      const existing = await readIfExists(file);
      const currentId = existing ? parseStateIdentity(existing, file) : undefined;
      plans.push({
        capture,
        bytes,
        incoming,
        current: currentId,
        refusal: replaceRefusal(incoming, currentId),
        destination: file,
        write: () => writeAtomically(file, bytes),
      });
    }
  }

  // Nothing is written unless every selected workspace may be: a half-restored set of workspaces is
  // harder to reason about than none.
  const refused = plans.filter((p) => p.refusal);
  if (refused.length && !options.force)
    throw new LifeboatError(
      'CONFLICT',
      `refusing to restore: ${refused.map((p) => `${p.capture.workspace}: ${p.refusal}`).join('; ')}`,
      {
        hint: 'nothing was written; check that this is the state you mean, then pass --force to write it anyway',
      },
    );
  const result: TerraformRestoreResult = {
    snapshot: snapshot.id,
    workspaces: [],
    configWritten: [],
    configKept: [],
    emptySkipped,
  };
  for (const p of plans) {
    await p.write();
    result.workspaces.push({
      workspace: p.capture.workspace,
      destination: p.destination,
      serial: p.incoming?.serial,
      lineage: p.incoming?.lineage,
      previousSerial: p.current?.serial,
      previousLineage: p.current?.lineage,
      ...(p.refusal ? { overridden: p.refusal } : {}),
    });
  }

  // The backend configuration in .terraform/ goes back with a whole-directory restore; one that is
  // already there is kept (it may name newer credentials) unless --force.
  if (!states && options.workspace === undefined) {
    for (const item of snapshot.items) {
      if (item.kind !== 'backend-config' && item.kind !== 'environment') continue;
      const rel = item.name.slice('local/'.length);
      const file = path.join(path.resolve(options.target!), rel);
      if (!options.force && (await readIfExists(file)) !== undefined) {
        result.configKept.push(rel);
        continue;
      }
      await writeAtomically(file, await repo.readItemBuffer(item));
      result.configWritten.push(rel);
    }
  }
  return result;
}
