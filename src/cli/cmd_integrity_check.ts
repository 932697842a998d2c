/**
 * `lifeboat integrity-check`: a restore drill (src/operations/drill.ts) — read a rotating subset of the
 * packs, restore the newest backup of each chosen layer into a scratch target, verify it, remove it, time
 * each layer against its RTO budget, and record the drill in the repository.
 */
import { LifeboatError } from '../core/errors.ts';
import { Repository } from '../core/repository/repository.ts';
import { openBackend } from '../core/storage/open.ts';
import { eventActor } from '../core/events.ts';
import {
  DRILL_LAYERS,
  VAULT_LAYERS,
  drillBudgets,
  parseBudget,
  type DrillLayer,
} from '../operations/drill-records.ts';
import type { OperationRecord } from '../operations/operation-record.ts';
import { list, str, usageError, type Command, type CommandContext, type OptionValues } from './command.ts';
import { EXIT_FAILED, EXIT_INTEGRITY, EXIT_OK } from './exit.ts';
import { VAULT_OPTION } from './cmd_secrets_backup.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';
import { CONNECTION_OPTIONS, connectFromOptions } from './mongodb-options.ts';
import { formatDuration } from './output.ts';
import { keystoreFor, openRepository } from './repo.ts';

export interface IntegrityCheckResult extends OperationRecord {
  /** 0 ok or warning, 1 a layer failed or ran over its budget, 3 damage found. */
  exitCode: number;
}

/** The records repository: the same one, opened again without the command's signal (see runner.ts). */
async function openRecords(ctx: CommandContext): Promise<Repository> {
  const backend = await openBackend(ctx.globals.repo, ctx.env);
  const repo = await Repository.open(backend, await keystoreFor(ctx)).catch(async (e: unknown) => {
    await backend.close().catch(() => {});
    throw e;
  });
  ctx.defer(() => repo.close());
  return repo;
}

/** The Key Vault of the secrets layer: --vault, LIFEBOAT_SECRETS_VAULT, or secrets.vault in lifeboat.yaml. */
function vaultUrl(ctx: CommandContext, values: OptionValues): string | undefined {
  const section = ctx.section('secrets');
  const fromFile = section.vault ?? (section.backup as Record<string, unknown> | undefined)?.vault;
  const v = str(values.vault) ?? (typeof fromFile === 'string' ? fromFile : undefined);
  return v || undefined;
}

/**
 * The layers to drill. The secrets layer needs a Key Vault: without one, `all` leaves it out (the
 * result's `secrets` step says so) and `--component secrets` is a usage error.
 */
function components(
  values: OptionValues,
  vault: string | undefined,
): { layers: DrillLayer[]; all: boolean; withoutVault: DrillLayer[] } {
  const given = list(values.component);
  const words = given.length ? given : ['all'];
  for (const w of words)
    if (w !== 'all' && !DRILL_LAYERS.includes(w as DrillLayer))
      throw usageError(
        `--component ${w} is not a drill layer`,
        `use one of ${DRILL_LAYERS.join(', ')} or all (e.g. --component mongodb)`,
      );
  const all = words.includes('all');
  const chosen = all ? [...DRILL_LAYERS] : DRILL_LAYERS.filter((l) => words.includes(l));
  const withoutVault = vault ? [] : chosen.filter((l) => VAULT_LAYERS.has(l));
  if (withoutVault.length && !all)
    throw usageError(
      `--component ${withoutVault.join(', ')} needs a Key Vault and none is given`,
      'pass --vault https://NAME.vault.azure.net (or set LIFEBOAT_SECRETS_VAULT, or secrets.vault in lifeboat.yaml)',
    );
  return { layers: chosen.filter((l) => !withoutVault.includes(l)), all, withoutVault };
}

export const integrityCheckCommand: Command<IntegrityCheckResult> = {
  path: ['integrity-check'],
  summary:
    'restore drill: read a rotating subset of the data, restore the newest backup of each layer into a scratch target, verify it, remove it, time it against its RTO',
  options: {
    component: {
      type: 'string',
      multiple: true,
      arg: 'LAYER',
      default: 'all',
      description: `what to drill: ${DRILL_LAYERS.join(' | ')} | all (repeatable)`,
    },
    'read-data-subset': {
      type: 'string',
      arg: 'p%|n/t|off',
      default: '10%',
      description:
        'packs read in full first: p% rotates through 100/p subsets across drills (10%: all data within ten drills)',
    },
    ...CONNECTION_OPTIONS,
    uri: { ...CONNECTION_OPTIONS.uri, env: 'LIFEBOAT_MONGODB_URI' },
    'scratch-mongodb-uri': {
      type: 'string',
      arg: 'URI',
      description:
        'restore the MongoDB drill on this server instead of a scratch database on --uri (same credentials and TLS options)',
    },
    ...KUBE_OPTIONS,
    vault: {
      ...VAULT_OPTION,
      description: `${VAULT_OPTION.description}: where the secrets drill reads the backed-up Secrets (default: secrets.vault)`,
    },
    'secrets-namespace': {
      type: 'string',
      multiple: true,
      arg: 'NS',
      description:
        'drill only the Secrets backed up from this namespace (repeatable; default every manifest in the vault)',
    },
    rto: {
      type: 'string',
      multiple: true,
      arg: 'LAYER=DURATION',
      description:
        'override an RTO budget (e.g. mongodb=30m, total=90m); default: drills.budgets in lifeboat.yaml, else the guide',
    },
    'smoke-test-url': {
      type: 'string',
      arg: 'URL',
      description:
        "after the drill, GET this URL (e.g. Rocket.Chat's /api/info); default: drills.smoke-test.url",
    },
    reason: {
      type: 'string',
      arg: 'WHY',
      default: 'manual',
      description: 'recorded with the drill: manual | schedule | event',
    },
  },
  help: `Exit code 0 when every layer was restored and verified within its budget (over 80 % of it is a
warning), 1 when a layer failed or ran over its budget (the layer is named), 3 when damage was found.
The drill is recorded in the repository (kind drill); the newest verified snapshot of each layer is kept
by retention whatever the policy says. The secrets layer is drilled from Key Vault (--vault; without one,
all leaves it out). Scratch targets: MongoDB database lifeboat_drill_<id>, PVCs and namespaces labelled
lifeboat.io/drill=<id>; removed after the drill, also when it fails or is stopped,
and by the next drill if the process was killed.
Examples:
  lifeboat integrity-check --component mongodb                 # weekly
  lifeboat integrity-check --component pvc                     # monthly
  lifeboat integrity-check --component secrets --vault https://rc-prod.vault.azure.net  # monthly
  lifeboat integrity-check --component all --smoke-test-url https://chat.example.com/api/info  # quarterly`,
  async run(ctx, values) {
    const vault = vaultUrl(ctx, values);
    const { layers, all, withoutVault } = components(values, vault);
    const drills = ctx.section('drills');
    const budgets = drillBudgets(drills.budgets);
    for (const spec of list(values.rto)) {
      const m = /^([a-z-]+)=(.+)$/.exec(spec);
      if (!m || !(m[1] in budgets))
        throw usageError(
          `--rto ${spec} is not LAYER=DURATION`,
          `e.g. --rto mongodb=30m (layers: ${[...DRILL_LAYERS, 'total'].join(', ')})`,
        );
      budgets[m[1] as DrillLayer | 'total'] = parseBudget(m[2], `--rto ${m[1]}`);
    }
    const subsetText = str(values['read-data-subset']);
    const readDataSubset = !subsetText || subsetText === 'off' ? undefined : subsetText;
    const smokeSetting = Object.fromEntries(
      Object.entries((drills['smoke-test'] ?? {}) as Record<string, unknown>).map(([k, v]) => [
        k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()).replace(/_/g, '-'),
        v,
      ]),
    );
    if (drills['smoke-test'] !== undefined && !/^https?:\/\//.test(String(smokeSetting.url ?? '')))
      throw new LifeboatError('CONFIG', 'drills.smoke-test.url must be an http(s) URL', {
        hint: 'e.g. url: https://chat.example.com/api/info (or leave drills.smoke-test out)',
      });
    const smokeUrl = str(values['smoke-test-url']) ?? (smokeSetting.url as string | undefined);
    if (smokeUrl && !/^https?:\/\//.test(smokeUrl))
      throw usageError(
        `--smoke-test-url ${smokeUrl} is not an http(s) URL`,
        'e.g. https://chat.example.com/api/info',
      );
    const { runDrill, nextSubset } = await import('../operations/drill.ts');
    if (readDataSubset) nextSubset(readDataSubset, []); // a typo fails before anything is opened
    const repo = await openRepository(ctx, { lock: 'shared', purpose: 'integrity-check' });
    const records = await openRecords(ctx);

    const opens: Record<DrillLayer, () => Promise<import('../operations/drills/types.ts').LayerDrill>> = {
      mongodb: async () => {
        const { mongodbDrill } = await import('../operations/drills/mongodb.ts');
        const { safeUri } = await import('../sources/mongodb/connect.ts');
        const scratchUri = str(values['scratch-mongodb-uri']);
        const target = scratchUri ? { ...values, uri: scratchUri } : values;
        const connect = async () => {
          const { client } = await connectFromOptions(ctx, target);
          ctx.defer(() => client.close().catch(() => {}));
          return client;
        };
        return mongodbDrill(connect, safeUri(str(target.uri) ?? ''));
      },
      pvc: async () => {
        const { pvcDrill } = await import('../operations/drills/pvc.ts');
        // A scratch PVC may take the layer's budget to bind, not longer.
        return pvcDrill(await kubeClient(ctx, values), { timeoutMs: budgets.pvc });
      },
      'cluster-state': async () => {
        const { clusterStateDrill } = await import('../operations/drills/cluster-state.ts');
        return clusterStateDrill(await kubeClient(ctx, values));
      },
      secrets: async () => {
        const { secretsDrill } = await import('../operations/drills/secrets.ts');
        const { SecretsVault, parseVaultUrl } = await import('../sources/secrets/vault.ts');
        return secretsDrill(
          await kubeClient(ctx, values),
          new SecretsVault(parseVaultUrl(vault), { maxRetries: 2 }, ctx.env),
          { namespaces: list(values['secrets-namespace']) },
        );
      },
    };
    const bar = ctx.out.progress('drill', undefined, 'count');
    let record: OperationRecord;
    try {
      record = await runDrill({
        repo,
        records,
        layers: [
          ...layers.map((layer) => ({ layer, required: !all, open: opens[layer] })),
          // `all` without a Key Vault: the secrets layer is not drilled, and its step says why.
          ...withoutVault.map((layer) => ({
            layer,
            required: false,
            open: opens[layer],
            skipReason:
              'no Key Vault given (--vault, LIFEBOAT_SECRETS_VAULT or secrets.vault in lifeboat.yaml)',
          })),
        ],
        budgets,
        readDataSubset,
        smokeTest: smokeUrl
          ? {
              url: smokeUrl,
              expectField: smokeSetting['expect-field'] as string | undefined,
              waitMs: smokeSetting.wait
                ? parseBudget(String(smokeSetting.wait), 'drills.smoke-test.wait')
                : undefined,
            }
          : undefined,
        signal: ctx.signal,
        actor: eventActor(ctx.env),
        reason: str(values.reason),
        note: (m) => ctx.out.note(m),
        defer: (fn) => ctx.defer(fn),
        onUpdate: (_r, step) => {
          if (step?.status === 'running') bar.update(0, step.name);
        },
        onRecordError: (e) => ctx.warn(`drill record not written: ${(e as Error).message}`),
      });
    } finally {
      bar.finish();
    }
    // Stopped by a signal: the record says `interrupted`; the exit code is the signal's.
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const failed = record.status !== 'success' && record.status !== 'warning';
    const damaged = record.steps.some((s) => s.error?.code === 'INTEGRITY');
    return { ...record, exitCode: damaged ? EXIT_INTEGRITY : failed ? EXIT_FAILED : EXIT_OK };
  },
  exitCode: (r) => r.exitCode,
  effect: 'verify',
  layer: 'repository',
  event: (r) => ({
    result:
      r.status === 'success' || r.status === 'warning' || r.status === 'interrupted' ? r.status : 'failure',
    details: {
      drill: r.id,
      status: r.status,
      durationMs: r.durationMs ?? 0,
      ...Object.fromEntries(
        r.steps.flatMap((s) => [
          [`${s.name}.status`, s.status],
          ...(s.durationMs !== undefined ? [[`${s.name}.durationMs`, s.durationMs]] : []),
        ]),
      ),
    },
  }),
  human(r, out) {
    out.table(
      r.steps.map((s) => [
        s.name,
        s.status,
        s.durationMs !== undefined ? formatDuration(s.durationMs) : '',
        s.budgetMs ? formatDuration(s.budgetMs) : '',
        s.snapshot ? s.snapshot.slice(0, 8) : '',
        s.error
          ? `${s.error.code}: ${s.error.message}`
          : Object.entries(s.summary ?? {})
              .filter(([k]) => !['subsetIndex', 'subsetCount'].includes(k))
              .map(([k, v]) => `${k}=${v}`)
              .join(' '),
      ]),
      ['step', 'status', 'took', 'budget', 'snapshot', 'result'],
    );
    out.line(
      `drill ${r.id}: ${r.status} in ${formatDuration(r.durationMs ?? 0)}${r.budgetMs ? ` (budget ${formatDuration(r.budgetMs)})` : ''}`,
    );
    for (const s of r.steps) if (s.error?.hint) out.line(`${s.name}: next: ${s.error.hint}`);
  },
};
