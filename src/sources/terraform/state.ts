/**
 * What Lifeboat reads of a Terraform/OpenTofu state file: its identity (lineage, serial, version), never a
 * resource value — state holds passwords and keys in plain text, so nothing else leaves the encrypted
 * item. Also Terraform's own rule for replacing one state with another (`terraform state push`).
 */
import { LifeboatError } from '../../core/errors.ts';

/** The identity of one state file (state format v4, and v3 for `.terraform/terraform.tfstate`). */
export interface StateIdentity {
  /** Random id given when a state is first created; stays for the life of that state. */
  lineage: string;
  /** Bumped by Terraform on every write that changed something. */
  serial: number;
  /** State format version (4 for current Terraform and OpenTofu). */
  version: number;
  terraformVersion?: string;
}

/**
 * Parses a state file's identity; `undefined` for an empty file (the azurerm backend leaves an empty blob
 * when it locks a workspace that has no state yet). `what` names the file in errors — the content never.
 */
export function parseStateIdentity(bytes: Uint8Array, what: string): StateIdentity | undefined {
  if (bytes.byteLength === 0) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    // Not the parser's message: it may quote part of the file.
    throw new LifeboatError('INTEGRITY', `${what} is not valid JSON, so not a Terraform state file`);
  }
  const d = doc as Record<string, unknown>;
  if (
    typeof d !== 'object' ||
    d === null ||
    typeof d.lineage !== 'string' ||
    !Number.isSafeInteger(d.serial) ||
    !Number.isSafeInteger(d.version)
  ) {
    throw new LifeboatError(
      'INTEGRITY',
      `${what} is not a Terraform state file (no version, serial and lineage)`,
    );
  }
  return {
    lineage: d.lineage,
    serial: d.serial as number,
    version: d.version as number,
    ...(typeof d.terraform_version === 'string' ? { terraformVersion: d.terraform_version } : {}),
  };
}

/**
 * Why `incoming` may not replace `current`, or undefined when it may: Terraform's `state push` rule —
 * the same lineage, and a serial at least as high as the current one. No current state: always allowed.
 */
export function replaceRefusal(
  incoming: StateIdentity | undefined,
  current: StateIdentity | undefined,
): string | undefined {
  if (!current || !incoming) return undefined;
  if (incoming.lineage !== current.lineage)
    return `lineage mismatch: the snapshot's state is lineage ${incoming.lineage}, the current one ${current.lineage} (a different state)`;
  if (incoming.serial < current.serial)
    return `serial ${incoming.serial} in the snapshot is lower than serial ${current.serial} of the current state (it is older)`;
  return undefined;
}

/** What the azurerm backend keeps in blob metadata `terraformlockid` while a workspace is locked. */
export interface LockInfo {
  ID?: string;
  Operation?: string;
  Who?: string;
  Version?: string;
  Created?: string;
  Path?: string;
  Info?: string;
}

/** Decodes `terraformlockid` (base64 of the lock's JSON); a value that is not one is kept as `raw`. */
export function decodeLockInfo(value: string): LockInfo | { raw: string } {
  try {
    const parsed = JSON.parse(Buffer.from(value, 'base64').toString('utf8')) as unknown;
    if (parsed && typeof parsed === 'object') {
      const info: LockInfo = {};
      for (const k of ['ID', 'Operation', 'Who', 'Version', 'Created', 'Path', 'Info'] as const) {
        const v = (parsed as Record<string, unknown>)[k];
        if (typeof v === 'string') info[k] = v;
      }
      return info;
    }
  } catch {
    // fall through
  }
  return { raw: value.slice(0, 200) };
}
