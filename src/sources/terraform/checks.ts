/**
 * What `lifeboat validate --type terraform` checks across captures, from snapshot meta alone (no state is
 * decrypted). For each workspace — identified by where it came from (working directory or azurerm key)
 * and its name — the two newest captures that hold it are compared:
 * - serial went backwards: the newer capture has a lower serial under the same lineage (a state was
 *   rolled back or an old copy was pushed);
 * - lineage changed: the newer capture's lineage differs (the state was replaced by a different one);
 * - lock held too long (azurerm): in the newest capture the blob was leased and the lock's own `Created`
 *   time lies more than 2 h before the capture; or, when the lock info has no usable `Created`, the same
 *   lock ID was present in both captures and they lie more than 2 h apart. A lease's age is not among a
 *   blob's properties, so these are the two ways to tell.
 */
import type { Snapshot } from '../../core/repository/model.ts';
import { capturedWorkspaces, type WorkspaceCapture } from './terraform.ts';

export const LOCK_AGE_LIMIT_MS = 2 * 3600_000;

export interface TerraformFinding {
  kind: 'serial-regressed' | 'lineage-changed' | 'lock-held-long';
  workspace: string;
  location: string;
  message: string;
}

interface Capture {
  at: number;
  snapshot: Snapshot;
  ws: WorkspaceCapture;
}

function captureTime(s: Snapshot): number {
  const t = Date.parse(String(s.meta.capturedAt ?? s.time));
  return Number.isNaN(t) ? Date.parse(s.time) : t;
}

function lockId(ws: WorkspaceCapture): string | undefined {
  return ws.lock && 'ID' in ws.lock ? ws.lock.ID : undefined;
}

const hours = (ms: number) => (ms / 3600_000).toFixed(1);

/** Findings over every terraform snapshot given (in any order). */
export function terraformFindings(snapshots: Snapshot[]): TerraformFinding[] {
  const byWorkspace = new Map<string, Capture[]>();
  for (const snapshot of snapshots) {
    if (snapshot.type !== 'terraform') continue;
    for (const ws of capturedWorkspaces(snapshot)) {
      const key = JSON.stringify([ws.source, ws.location, ws.workspace]);
      const list = byWorkspace.get(key) ?? [];
      list.push({ at: captureTime(snapshot), snapshot, ws });
      byWorkspace.set(key, list);
    }
  }
  const findings: TerraformFinding[] = [];
  for (const captures of byWorkspace.values()) {
    captures.sort((a, b) => a.at - b.at);
    const newest = captures.at(-1)!;
    const previous = captures.at(-2);
    const where = { workspace: newest.ws.workspace, location: newest.ws.location };
    const label = `${newest.ws.location} workspace ${newest.ws.workspace}`;
    const snap = (c: Capture) => `${c.snapshot.id.slice(0, 8)} (${c.snapshot.timestamp})`;
    if (previous && previous.ws.lineage && newest.ws.lineage) {
      if (previous.ws.lineage !== newest.ws.lineage)
        findings.push({
          kind: 'lineage-changed',
          ...where,
          message: `${label}: lineage changed from ${previous.ws.lineage} in ${snap(previous)} to ${newest.ws.lineage} in ${snap(newest)} (the state was replaced)`,
        });
      else if ((newest.ws.serial ?? 0) < (previous.ws.serial ?? 0))
        findings.push({
          kind: 'serial-regressed',
          ...where,
          message: `${label}: serial went backwards from ${previous.ws.serial} in ${snap(previous)} to ${newest.ws.serial} in ${snap(newest)} (an older state was written back)`,
        });
    }
    if (newest.ws.leaseState === 'leased') {
      const created = Date.parse(
        newest.ws.lock && 'Created' in newest.ws.lock ? (newest.ws.lock.Created ?? '') : '',
      );
      const id = lockId(newest.ws);
      if (!Number.isNaN(created)) {
        if (newest.at - created > LOCK_AGE_LIMIT_MS)
          findings.push({
            kind: 'lock-held-long',
            ...where,
            message: `${label}: locked for ${hours(newest.at - created)} h at capture ${snap(newest)} (lock ${id ?? '?'}${newest.ws.lock && 'Who' in newest.ws.lock ? ` by ${newest.ws.lock.Who}` : ''}, created ${new Date(created).toISOString()})`,
          });
      } else if (
        previous &&
        id !== undefined &&
        lockId(previous.ws) === id &&
        newest.at - previous.at > LOCK_AGE_LIMIT_MS
      )
        findings.push({
          kind: 'lock-held-long',
          ...where,
          message: `${label}: the same lock ${id} was held at ${snap(previous)} and ${snap(newest)}, ${hours(newest.at - previous.at)} h apart`,
        });
    }
  }
  return findings;
}
