/**
 * `lifeboat validate`: the guide's backup-validation step — fast checks of what exists, per layer
 * (src/operations/validate.ts runs one validator per layer): the newest backup is young enough, it
 * committed, its metadata verifies (MongoDB counts and hashes, the cluster's VolumeSnapshots, decodable
 * cluster objects, Key Vault digests, sane Terraform lineage/serial), and retention keeps up.
 * `--read-back` also reads the newest snapshot of each layer back in full (every blob authenticated and
 * re-hashed), as integrity checks and drills do. Nothing is written.
 */
import { parseDuration } from '../core/repository/forget.ts';
import type { SnapshotType } from '../core/repository/model.ts';
import { isEmptyPolicy } from '../core/repository/forget.ts';
import type { LayerResult, LayerValidator, ValidationReport } from '../operations/validate.ts';
import type { KubeClient } from '../sources/kubernetes/client.ts';
import type { SecretsVault } from '../sources/secrets/vault.ts';
import { LAYER_NAMES, VALIDATION_LAYERS, validationLayer } from '../operations/validate-layers.ts';
import type { ConfigSetting } from './config-sections.ts';
import { str, usageError, type Command, type CommandContext, type OptionValues } from './command.ts';
import { VAULT_OPTION } from './cmd_secrets_backup.ts';
import { EXIT_FAILED, EXIT_INTEGRITY, EXIT_OK } from './exit.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';
import { formatBytes, type Output } from './output.ts';
import { openRepository } from './repo.ts';
import { policyFrom } from './retention.ts';

const FORMATS = ['table', 'markdown', 'json'] as const;
type Format = (typeof FORMATS)[number];
const FORMAT = Symbol('format');

type ValidateResult = ValidationReport & { [FORMAT]?: Format };

const LAYER_KEYS = [...new Set([...VALIDATION_LAYERS.flatMap((v) => [v.layer, v.appliesTo]), 'copy'])];

/** `validate.max-age` in lifeboat.yaml: a duration for every layer, or a map of layer → duration. */
export const VALIDATE_MAX_AGE_SETTING: ConfigSetting = {
  path: ['validate', 'max-age'],
  schema: {
    description:
      'how old the newest backup of a layer may be: one duration (as --max-age) or a map of layer → duration (e.g. {mongodb: 26h, terraform: 8d}); layers it does not name use --max-age',
    // One schema for both forms (a string, or a map of known layers), so a problem is reported at its
    // own path (validate.max-age.volumes). Durations themselves are checked when validate reads them.
    type: ['string', 'object'],
    properties: Object.fromEntries(LAYER_KEYS.map((k) => [k, { type: 'string' }])),
    additionalProperties: false,
  },
};

function durationMs(s: string, where: string): number {
  try {
    const d = parseDuration(s);
    return ((d.y * 365 + d.m * 31 + d.d) * 24 + d.h) * 3600_000;
  } catch (e) {
    throw usageError(`${where}: ${(e as Error).message}`);
  }
}

/** Per-layer max age: `validate.max-age.<layer>` (layer or snapshot type name), else --max-age. */
function maxAges(ctx: CommandContext, values: OptionValues): (type: SnapshotType | 'copy') => number {
  const fallback = durationMs(str(values['max-age'])!, '--max-age');
  const setting = ctx.section('validate')['max-age'];
  const byType = new Map<string, number>();
  if (setting && typeof setting === 'object' && !Array.isArray(setting))
    for (const [k, v] of Object.entries(setting as Record<string, unknown>)) {
      const key = k === 'copy' ? 'copy' : validationLayer(k)?.appliesTo;
      if (!key) continue; // the config check has rejected it already
      byType.set(key, durationMs(String(v), `${ctx.configFile}: validate.max-age.${k}`));
    }
  return (type) => byType.get(type) ?? fallback;
}

/** The keep policy the layer's backups run with: the backup command's retention flags, else `forget`'s. */
async function policies(ctx: CommandContext) {
  // Imported here: options.ts needs the command table, which imports this file.
  const { findCommand, resolveOptions } = await import('./options.ts');
  const backupOf: Partial<Record<SnapshotType, string[]>> = {
    mongodb: ['mongodb', 'backup'],
    files: ['files', 'backup'],
  };
  return (type: SnapshotType) => {
    for (const words of [backupOf[type], ['forget']]) {
      if (!words) continue;
      const cmd = findCommand(words).cmd;
      if (!cmd || cmd.path.join(' ') !== words.join(' ')) continue;
      const values = resolveOptions(cmd, {}, ctx.env, ctx.config, ctx.configFile);
      if (values['no-retention']) continue;
      try {
        const policy = policyFrom(values);
        if (!isEmptyPolicy(policy)) return { policy, from: `\`${words.join(' ')}\`` };
      } catch {
        // A bad retention setting fails the backup that reads it; validation just has no policy to compare.
      }
    }
    return undefined;
  };
}

/** The second location `copy` is configured for (copy.to / LIFEBOAT_COPY_TO), as its record names it. */
async function copyTarget(ctx: CommandContext): Promise<string | undefined> {
  const { findCommand, resolveOptions } = await import('./options.ts');
  const { redactString } = await import('../core/log.ts');
  const cmd = findCommand(['copy']).cmd;
  if (!cmd || cmd.path.join(' ') !== 'copy') return undefined;
  const to = str(resolveOptions(cmd, {}, ctx.env, ctx.config, ctx.configFile).to);
  if (to === undefined) return undefined;
  // As the record names it: the backend's location (an absolute path for a local repository).
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(to) ? redactString(to) : (await import('node:path')).resolve(to);
}

function vaultUrl(ctx: CommandContext, values: OptionValues): string | undefined {
  const section = ctx.section('secrets');
  const fromFile = section.vault ?? (section.backup as Record<string, unknown> | undefined)?.vault;
  const v = str(values.vault) ?? (typeof fromFile === 'string' ? fromFile : undefined);
  return v || undefined;
}

export const validateCommand: Command<ValidateResult> = {
  path: ['validate'],
  summary:
    'check the newest backup of each layer: age, commit, metadata, VolumeSnapshots, Key Vault digests, retention',
  options: {
    type: {
      type: 'string',
      arg: 'LAYER',
      description: `only this layer: ${LAYER_NAMES.join(', ')} (or a snapshot type, e.g. pvc-snapshots), or all`,
    },
    'max-age': {
      type: 'string',
      arg: 'DURATION',
      default: '26h',
      description: 'a newest backup older than this is stale (per layer: validate.max-age in lifeboat.yaml)',
    },
    'require-all': {
      type: 'boolean',
      description: 'a layer with no backup at all is a failure (default: only the layers present)',
    },
    'read-back': {
      type: 'boolean',
      description: 'also read the newest snapshot of each layer back in full (every blob re-hashed)',
    },
    format: {
      type: 'string',
      arg: 'FORMAT',
      default: 'table',
      description: 'table, markdown (a pipeline summary) or json (same as --json)',
    },
    vault: {
      ...VAULT_OPTION,
      description: `${VAULT_OPTION.description}: where the secrets layer is checked`,
    },
    ...KUBE_OPTIONS,
  },
  help: [
    'Status per layer: ok, warning (exit 0), stale, missing, failed (exit 1), damaged (--read-back, exit 3).',
    'Without cluster or Key Vault access the pvc / secrets checks say `not checked` (a warning). Terraform',
    "findings (a workspace's serial went backwards, its lineage changed, a lock held over 2 h) are warnings",
    'that exit 1 (docs/terraform.md). See docs/operations.md#validation.',
    'Examples:',
    '  lifeboat validate',
    '  lifeboat validate --type pvc --kubeconfig ~/.kube/config',
    '  lifeboat validate --format markdown >> "$GITHUB_STEP_SUMMARY"',
  ].join('\n'),
  async run(ctx, values) {
    const { NoAccess, validateLayers, validatorFor } = await import('../operations/validate.ts');
    const { SecretsVault, parseVaultUrl } = await import('../sources/secrets/vault.ts');
    const type = str(values.type);
    let only: LayerValidator[] | undefined;
    if (type === 'copy') only = [];
    else if (type && type !== 'all') {
      const v = validatorFor(type);
      if (!v) throw usageError(`--type must be one of ${LAYER_NAMES.join(', ')}, copy or all, got "${type}"`);
      only = [v];
    }
    const format = (values.json ? 'json' : (str(values.format) ?? 'table')) as Format;
    if (!FORMATS.includes(format))
      throw usageError(`--format must be one of ${FORMATS.join(', ')}, got "${String(values.format)}"`);
    const maxAgeMs = maxAges(ctx, values);
    const policy = await policies(ctx);
    const url = vaultUrl(ctx, values);
    let kube: Promise<KubeClient> | undefined;
    let vault: SecretsVault | undefined;
    const repo = await openRepository(ctx, { lock: 'shared' });
    const report = await validateLayers({
      repo,
      signal: ctx.signal,
      only,
      requireAll: values['require-all'] === true,
      readBack: values['read-back'] === true,
      maxAgeMs,
      policy,
      peers: {
        kube: () =>
          (kube ??= kubeClient(ctx, values).catch((e: Error) => {
            throw new NoAccess(`no cluster access (${e.message})`);
          })),
        vault: async () => {
          if (!url) return undefined;
          return (vault ??= new SecretsVault(parseVaultUrl(url), { maxRetries: 2 }, ctx.env));
        },
      },
      onReadBack: (t, total) => ctx.out.progress(`validate ${t}`, total),
      // Copies to other locations: with every layer, or alone (`--type copy`).
      ...(only === undefined || type === 'copy'
        ? { copies: { maxAgeMs: maxAgeMs('copy'), expected: await copyTarget(ctx) } }
        : {}),
    });
    for (const r of report.results) for (const w of r.warnings) ctx.warn(`${r.layer}: ${w}`);
    if (!report.ok) ctx.out.note(`lifeboat: ${report.summary}`);
    return Object.assign(report, { [FORMAT]: format });
  },
  exitCode: (r) =>
    r.results.some((x) => x.status === 'damaged') ? EXIT_INTEGRITY : r.ok ? EXIT_OK : EXIT_FAILED,
  effect: 'verify',
  event(r, values) {
    const type = str(values.type);
    const v = type && type !== 'all' ? validationLayer(type) : undefined;
    const alerts = r.results.some((x) => x.findings.some((f) => f.alert));
    return {
      ...(v ? { layer: v.appliesTo } : {}),
      result: !r.ok ? 'failure' : r.counts.warning || alerts ? 'warning' : 'success',
      ...(r.readBack ? { bytesProcessed: r.results.reduce((n, x) => n + (x.bytes ?? 0), 0) } : {}),
      details: {
        layers: r.results.length,
        ...r.counts,
        findings: r.results.reduce((n, x) => n + x.findings.length, 0),
        readBack: r.readBack,
        ...(r.failing.length ? { failing: r.failing.join(',') } : {}),
      },
    };
  },
  human(r, out) {
    const format = r[FORMAT] ?? 'table';
    if (format === 'json') out.document(r);
    else if (format === 'markdown') markdown(r, out);
    else table(r, out);
  },
};

const newest = (x: LayerResult) =>
  x.timestamp ? `${x.timestamp} (${x.snapshot!.slice(0, 8)})` : x.layer === 'secrets' ? 'Key Vault' : '';
const age = (x: LayerResult) => (x.ageHours !== undefined ? `${x.ageHours} h` : '');
function findingsCell(x: LayerResult): string {
  if (!x.findings.length) return x.problem ?? x.detail ?? '';
  const first = x.problem ?? x.findings[0].message;
  return x.findings.length > 1 ? `${first} (+${x.findings.length - 1} more)` : first;
}

function table(r: ValidateResult, out: Output): void {
  out.table(
    r.results.map((x) => [
      x.layer,
      x.status,
      newest(x),
      age(x),
      ...(r.readBack ? [x.bytes !== undefined ? formatBytes(x.bytes) : ''] : []),
      findingsCell(x),
    ]),
    ['LAYER', 'STATUS', 'NEWEST', 'AGE', ...(r.readBack ? ['READ BACK'] : []), 'FINDINGS'],
  );
  for (const x of r.results)
    for (const f of x.findings.slice(1)) out.line(`  ${x.layer}: ${f.level}: ${f.message}`);
  out.line(r.summary);
}

const ICON: Record<string, string> = {
  ok: '✅',
  warning: '⚠️',
  stale: '⏰',
  missing: '❌',
  failed: '❌',
  damaged: '💥',
};
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

/** A pipeline summary (GitHub `$GITHUB_STEP_SUMMARY`, Azure DevOps `##vso[task.uploadsummary]`). */
function markdown(r: ValidateResult, out: Output): void {
  out.line(`## Lifeboat backup validation: ${r.ok ? 'passed' : 'failed'}`);
  out.line();
  out.line(cell(r.summary));
  out.line();
  out.line('| Layer | Status | Newest snapshot | Age | Findings |');
  out.line('| --- | --- | --- | --- | --- |');
  for (const x of r.results)
    out.line(
      `| ${cell(x.layer)} | ${ICON[x.status] ?? ''} ${x.status} | ${cell(newest(x))} | ${age(x)} | ${x.findings.length || cell(x.detail ?? '')} |`,
    );
  const all = r.results.flatMap((x) => x.findings.map((f) => ({ layer: x.layer, f })));
  if (all.length) {
    out.line();
    out.line('### Findings');
    out.line();
    for (const { layer, f } of all) out.line(`- **${layer}** (${f.level}): ${cell(f.message)}`);
  }
}
