import type { SecretsSyncResult } from '../sources/secrets/secrets.ts';
import { VAULT_OPTION } from './cmd_secrets_backup.ts';
import { list, str, usageError, type Command } from './command.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';

export const secretsSyncCommand: Command<SecretsSyncResult> = {
  path: ['secrets', 'sync'],
  summary: 'recreate Kubernetes Secrets from Azure Key Vault (verified read-back), or --diff them',
  options: {
    ...KUBE_OPTIONS,
    vault: VAULT_OPTION,
    secret: {
      type: 'string',
      multiple: true,
      arg: 'NAME',
      description: 'only this Secret (repeatable; default every Secret in the manifests)',
    },
    namespace: {
      type: 'string',
      multiple: true,
      short: 'n',
      arg: 'NS',
      description: 'only this namespace (repeatable; default every namespace the vault has a manifest for)',
    },
    'dry-run': { type: 'boolean', description: 'show what would be created or updated; write nothing' },
    diff: { type: 'boolean', description: 'show drift both ways (digests only); write nothing' },
    'no-create-namespace': {
      type: 'boolean',
      description: 'fail instead of creating a missing namespace',
    },
  },
  help: `Reads the namespace manifests Lifeboat wrote, then each Secret's value (joined from its parts and
checked against its digest), and creates or replaces the Secret with its type, labels and annotations.
Missing namespaces are created (a disaster recovery restores into an empty cluster). Each written
Secret is read back and compared byte for byte. Values are never printed.
Examples:
  lifeboat secrets sync --vault https://rc-prod.vault.azure.net --namespace rocketchat
  lifeboat secrets sync --secret mongodb-password
  lifeboat secrets sync --diff --json`,
  async run(ctx, values) {
    const { syncSecrets } = await import('../sources/secrets/secrets.ts');
    const { SecretsVault, parseVaultUrl } = await import('../sources/secrets/vault.ts');
    if (values['dry-run'] === true && values.diff === true)
      throw usageError('--dry-run and --diff do not go together', 'choose one');
    const vault = new SecretsVault(parseVaultUrl(str(values.vault)), {}, ctx.env);
    const client = await kubeClient(ctx, values);
    return syncSecrets({
      client,
      vault,
      namespaces: list(values.namespace),
      secrets: list(values.secret),
      mode: values.diff === true ? 'diff' : values['dry-run'] === true ? 'dry-run' : 'sync',
      createNamespaces: values['no-create-namespace'] !== true,
    });
  },
  human(r, out) {
    for (const ns of r.createdNamespaces) out.line(`  created namespace ${ns}`);
    for (const s of r.secrets) {
      const digests =
        r.mode === 'diff'
          ? `  vault ${s.vaultDigest?.slice(0, 12) ?? '-'} cluster ${s.clusterDigest?.slice(0, 12) ?? '-'}`
          : '';
      out.line(`  ${s.action.padEnd(15)} ${s.namespace}/${s.name}${digests}`);
    }
    out.line(`${r.secrets.length} Secrets (${r.mode}) from ${r.vault}`);
  },
  exitCode: (r) => (r.mode === 'diff' && r.secrets.some((s) => s.action !== 'same') ? 1 : 0),
  effect: 'change',
  layer: 'secrets',
  event: (r) => {
    const actions: Record<string, number> = {};
    for (const s of r.secrets) actions[s.action] = (actions[s.action] ?? 0) + 1;
    return {
      items: r.secrets.length,
      details: { mode: r.mode, createdNamespaces: r.createdNamespaces.length, ...actions },
    };
  },
};
