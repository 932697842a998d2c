import type { SecretsBackupResult } from '../sources/secrets/secrets.ts';
import { list, str, type Command, type OptionSpec } from './command.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';

export const VAULT_OPTION: OptionSpec = {
  type: 'string',
  arg: 'URL',
  env: 'LIFEBOAT_SECRETS_VAULT',
  description: 'Key Vault, https://NAME.vault.azure.net (or NAME)',
};

export const secretsBackupCommand: Command<SecretsBackupResult> = {
  path: ['secrets', 'backup'],
  summary: 'copy Kubernetes Secrets into Azure Key Vault (one vault secret per Secret, change-only)',
  options: {
    ...KUBE_OPTIONS,
    vault: VAULT_OPTION,
    namespace: {
      type: 'string',
      multiple: true,
      short: 'n',
      arg: 'NS',
      description: 'namespace to back up (repeatable; default all but kube-*)',
    },
    selector: { type: 'string', arg: 'LABELS', description: 'only Secrets matching this label selector' },
    'dry-run': { type: 'boolean', description: 'show what would be written; write nothing' },
  },
  help: `Service-account tokens and Helm release records (sh.helm.release.v1.*) are skipped and listed.
Unchanged Secrets are not written again; names in the vault that Lifeboat did not create are left alone
(exit 1). Values are never printed: only names and salted digests. See docs/secrets.md.
Examples:
  lifeboat secrets backup --vault https://rc-prod.vault.azure.net --namespace rocketchat
  lifeboat secrets backup --namespace rocketchat --dry-run --json`,
  async run(ctx, values) {
    const { backupSecrets } = await import('../sources/secrets/secrets.ts');
    const { SecretsVault, parseVaultUrl } = await import('../sources/secrets/vault.ts');
    const vault = new SecretsVault(parseVaultUrl(str(values.vault)), {}, ctx.env);
    const client = await kubeClient(ctx, values);
    const progress = ctx.out.progress('secrets', undefined, 'count');
    try {
      const r = await backupSecrets({
        client,
        vault,
        namespaces: list(values.namespace),
        selector: str(values.selector),
        dryRun: values['dry-run'] === true,
        onProgress: (done, _total, what) => progress.update(done, what),
      });
      for (const s of r.secrets)
        if (s.action === 'conflict') ctx.warn(`${s.namespace}/${s.name} not backed up: ${s.reason}`);
      return r;
    } finally {
      progress.finish();
    }
  },
  human(r, out) {
    const verb = r.dryRun ? 'to write' : 'written';
    for (const s of r.secrets)
      out.line(
        `  ${s.action.padEnd(9)} ${s.namespace}/${s.name} → ${s.vaultName}${s.parts > 1 ? ` (${s.parts} parts)` : ''}`,
      );
    for (const s of r.skipped) out.line(`  skipped   ${s.namespace}/${s.name}: ${s.reason}`);
    const changed = r.secrets.filter((s) => ['created', 'updated', 'recovered'].includes(s.action)).length;
    out.line(
      `${r.secrets.length} Secrets from ${r.namespaces.join(', ') || 'no namespace'}: ${changed} ${verb}, ` +
        `${r.secrets.filter((s) => s.action === 'unchanged').length} unchanged, ${r.conflicts} conflicts ` +
        `(${r.writes} vault writes)`,
    );
  },
  exitCode: (r) => (r.conflicts > 0 ? 1 : 0),
  effect: 'change',
  layer: 'secrets',
  // Names and counts only: never a value (the result holds none either, only salted digests).
  event: (r) => ({
    items: r.secrets.length,
    ...(r.conflicts ? { result: 'partial' as const } : {}),
    details: {
      namespaces: r.namespaces.length,
      created: r.secrets.filter((s) => s.action === 'created').length,
      updated: r.secrets.filter((s) => s.action === 'updated').length,
      unchanged: r.secrets.filter((s) => s.action === 'unchanged').length,
      conflicts: r.conflicts,
      skipped: r.skipped.length,
      writes: r.writes,
    },
  }),
};
