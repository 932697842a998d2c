/**
 * Helm 3 releases read straight from their Secrets, without the helm binary.
 *
 * Helm's storage driver keeps each revision in a Secret `sh.helm.release.v1.<name>.v<revision>` of type
 * `helm.sh/release.v1`. Its `data.release` is, as the API returns it: base64 (Secret encoding) of base64
 * (Helm's own encoding) of gzip of the release JSON. Old Helm versions did not gzip, so decompression is
 * applied only when the magic bytes 1f 8b 08 are present.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { LifeboatError } from '../../core/errors.ts';

export const HELM_SECRET_TYPE = 'helm.sh/release.v1';
const GZIP_MAGIC = [0x1f, 0x8b, 0x08];

export interface HelmRelease {
  name: string;
  namespace: string;
  version: number;
  info?: {
    status?: string;
    first_deployed?: string;
    last_deployed?: string;
    description?: string;
    notes?: string;
  };
  chart?: {
    metadata?: { name?: string; version?: string; appVersion?: string };
    values?: unknown;
    templates?: unknown[];
  };
  /** The user-supplied values only (what `helm get values` prints). */
  config?: Record<string, unknown>;
  manifest?: string;
  hooks?: unknown[];
  [k: string]: unknown;
}

/** Summary without values or manifest: safe to print and to store in snapshot metadata. */
export interface HelmReleaseSummary {
  namespace: string;
  name: string;
  revision: number;
  status: string;
  chart: string;
  chartVersion: string;
  appVersion: string;
  lastDeployed: string;
}

/** Decodes `data.release` as read through the API (the Secret's base64 text). */
export function decodeHelmRelease(secretData: string, what = 'Helm release'): HelmRelease {
  let bytes: Buffer;
  try {
    // Layer 1: the Secret's own base64; layer 2: Helm's base64 of the (usually gzipped) JSON.
    const helmText = Buffer.from(secretData, 'base64').toString('latin1');
    bytes = Buffer.from(helmText, 'base64');
    if (GZIP_MAGIC.every((b, i) => bytes[i] === b)) bytes = gunzipSync(bytes);
    const release = JSON.parse(bytes.toString('utf8')) as HelmRelease;
    if (!release || typeof release.name !== 'string' || typeof release.version !== 'number')
      throw new Error('no name/version');
    return release;
  } catch (e) {
    throw new LifeboatError(
      'INTEGRITY',
      `${what}: data.release is not a Helm 3 release (${(e as Error).message})`,
      {
        hint: 'the Secret was changed by something other than Helm; back it up as a plain Secret or exclude it',
      },
    );
  }
}

/** The inverse of decodeHelmRelease: what Helm writes (used when a restore rewrites a release's namespace). */
export function encodeHelmRelease(release: HelmRelease): string {
  const helmText = gzipSync(Buffer.from(JSON.stringify(release), 'utf8')).toString('base64');
  return Buffer.from(helmText, 'latin1').toString('base64');
}

export function summarizeRelease(r: HelmRelease): HelmReleaseSummary {
  return {
    namespace: r.namespace,
    name: r.name,
    revision: r.version,
    status: r.info?.status ?? 'unknown',
    chart: r.chart?.metadata?.name ?? '',
    chartVersion: r.chart?.metadata?.version ?? '',
    appVersion: r.chart?.metadata?.appVersion ?? '',
    lastDeployed: r.info?.last_deployed ?? '',
  };
}

interface SecretLike {
  type?: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

export function isHelmReleaseSecret(s: SecretLike): boolean {
  return s.type === HELM_SECRET_TYPE && typeof s.data?.release === 'string';
}

export interface HelmReleaseHistory {
  namespace: string;
  name: string;
  /** The highest revision (what `helm list` shows). */
  current: HelmReleaseSummary;
  /** Every stored revision, oldest first. */
  revisions: HelmReleaseSummary[];
  /** User-supplied values of the current revision (may hold secrets: stored encrypted, never printed). */
  values: Record<string, unknown>;
  manifest: string;
}

/** Groups release Secrets into per-release histories (a release has one Secret per revision). */
export function releaseHistories(secrets: SecretLike[]): HelmReleaseHistory[] {
  const byRelease = new Map<string, HelmRelease[]>();
  for (const s of secrets) {
    if (!isHelmReleaseSecret(s)) continue;
    const r = decodeHelmRelease(s.data!.release, `Secret ${s.metadata?.namespace}/${s.metadata?.name}`);
    const key = `${r.namespace}/${r.name}`;
    byRelease.set(key, [...(byRelease.get(key) ?? []), r]);
  }
  return [...byRelease.values()]
    .map((rs) => {
      rs.sort((a, b) => a.version - b.version);
      const cur = rs.at(-1)!;
      return {
        namespace: cur.namespace,
        name: cur.name,
        current: summarizeRelease(cur),
        revisions: rs.map(summarizeRelease),
        values: cur.config ?? {},
        manifest: cur.manifest ?? '',
      };
    })
    .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}
