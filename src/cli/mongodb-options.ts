/** Flags shared by the `lifeboat mongodb *` commands: connection, TLS and namespace selection. */
import type { CommandContext, OptionSpec, OptionValues } from './command.ts';
import { int, list, str } from './command.ts';
import type { NamespaceFilter } from '../sources/mongodb/nsfilter.ts';
import type { MongoClient } from 'mongodb';

export const CONNECTION_OPTIONS: Record<string, OptionSpec> = {
  uri: {
    type: 'string',
    arg: 'URI',
    description:
      'MongoDB connection string (credentials may instead come from LIFEBOAT_MONGODB_USERNAME/PASSWORD[_FILE])',
  },
  tls: { type: 'boolean', description: 'use TLS' },
  'tls-ca-file': { type: 'string', arg: 'FILE', description: 'CA certificate(s) to trust' },
  'tls-certificate-key-file': {
    type: 'string',
    arg: 'FILE',
    description: 'client certificate and key (PEM)',
  },
  'tls-insecure': { type: 'boolean', description: 'do not verify the server certificate (testing only)' },
  'server-timeout': {
    type: 'string',
    arg: 'SECONDS',
    default: '30',
    description: 'how long to wait for the server',
  },
};

export const NS_OPTIONS: Record<string, OptionSpec> = {
  'ns-include': {
    type: 'string',
    multiple: true,
    arg: 'PATTERN',
    description: 'only these namespaces (db.coll, wildcards *; repeatable)',
  },
  'ns-exclude': {
    type: 'string',
    multiple: true,
    arg: 'PATTERN',
    description: 'skip these namespaces (repeatable)',
  },
};

// The MongoDB sources load only for a command that uses them (lazy-imports.test.ts).
export async function nsFilter(values: OptionValues): Promise<NamespaceFilter> {
  const { NamespaceFilter } = await import('../sources/mongodb/nsfilter.ts');
  return new NamespaceFilter(list(values['ns-include']), list(values['ns-exclude']));
}

export async function connectFromOptions(
  ctx: CommandContext,
  values: OptionValues,
): Promise<{ client: MongoClient; uri: string }> {
  const { connectMongo, credentialsFromEnv } = await import('../sources/mongodb/connect.ts');
  const uri = str(values.uri) ?? '';
  const creds = credentialsFromEnv(ctx.env);
  const client = await connectMongo({
    uri,
    serverTimeoutMs: (int(values['server-timeout'], 'server-timeout') ?? 30) * 1000,
    username: creds.username,
    password: creds.password,
    tls: values.tls ? true : undefined,
    tlsCAFile: str(values['tls-ca-file']),
    tlsCertificateKeyFile: str(values['tls-certificate-key-file']),
    tlsInsecure: Boolean(values['tls-insecure']),
  });
  return { client, uri };
}
