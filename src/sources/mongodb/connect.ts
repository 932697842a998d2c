/**
 * Connecting to MongoDB with errors an operator can act on: unreachable server, rejected credentials and
 * a bad URI each become one LifeboatError. Credentials come from the URI, or from LIFEBOAT_MONGODB_USERNAME
 * / LIFEBOAT_MONGODB_PASSWORD(_FILE) so they need not sit in a process list; URIs are only ever shown
 * with the password removed.
 */
import { readFileSync } from 'node:fs';
import type { Document, MongoClient, MongoClientOptions } from 'mongodb';
import { LifeboatError } from '../../core/errors.ts';

export interface ConnectOptions {
  uri: string;
  /** How long to wait for a server before giving up (ms). */
  serverTimeoutMs?: number;
  username?: string;
  password?: string;
  tls?: boolean;
  tlsCAFile?: string;
  tlsCertificateKeyFile?: string;
  tlsInsecure?: boolean;
  appName?: string;
}

/** The URI with any password replaced, for messages, logs and snapshot metadata. */
export function safeUri(uri: string): string {
  return uri.replace(/^(mongodb(?:\+srv)?:\/\/)([^@/]*)@/i, (_m, scheme: string, cred: string) => {
    const user = cred.split(':')[0];
    return `${scheme}${user ? user + ':***' : '***'}@`;
  });
}

/** Credentials from the environment (file first), for URIs that carry none. */
export function credentialsFromEnv(env: NodeJS.ProcessEnv): { username?: string; password?: string } {
  const username = env.LIFEBOAT_MONGODB_USERNAME || undefined;
  let password = env.LIFEBOAT_MONGODB_PASSWORD || undefined;
  const file = env.LIFEBOAT_MONGODB_PASSWORD_FILE;
  if (file) {
    try {
      password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new LifeboatError(
        'CONFIG',
        `cannot read LIFEBOAT_MONGODB_PASSWORD_FILE ${file}: ${(e as NodeJS.ErrnoException).code}`,
        {
          hint: 'point it at a readable file holding only the password',
        },
      );
    }
  }
  return { username, password };
}

/** Maps driver errors to operator-facing ones; `what` names the operation and server. */
export function mongoError(e: unknown, what: string): LifeboatError {
  if (e instanceof LifeboatError) return e;
  const err = e as {
    name?: string;
    message?: string;
    code?: number;
    codeName?: string;
    errorLabels?: string[];
  };
  const msg = String(err?.message ?? e);
  const name = String(err?.name ?? '');
  if (err?.code === 18 || /Authentication failed|auth.*fail|SCRAM|AuthenticationFailed/i.test(msg)) {
    return new LifeboatError('AUTH', `${what}: authentication failed`, {
      hint: 'check the user name and password (URI, LIFEBOAT_MONGODB_USERNAME/PASSWORD) and the authSource',
      cause: e,
    });
  }
  if (err?.code === 13 && /requires authentication/i.test(msg)) {
    return new LifeboatError('AUTH', `${what}: the server requires authentication`, {
      hint: 'give credentials in the URI or LIFEBOAT_MONGODB_USERNAME and LIFEBOAT_MONGODB_PASSWORD(_FILE)',
      cause: e,
    });
  }
  if (err?.code === 13 || err?.codeName === 'Unauthorized') {
    return new LifeboatError('PERMISSION', `${what}: not authorized (${msg.split('\n')[0]})`, {
      hint: 'grant the user the backup/restore roles on the databases involved',
      cause: e,
    });
  }
  if (/ECONNRESET|EPIPE|socket hang up/i.test(msg)) {
    // The server went away in the middle of an operation (crash, restart, failover, network cut).
    return new LifeboatError(
      'UNREACHABLE',
      `${what}: lost the connection to the server (${msg.split('\n')[0].slice(0, 160)})`,
      {
        hint: 'check that mongod is running and reachable, then run the command again',
        cause: e,
      },
    );
  }
  if (
    /ServerSelection|MongoNetwork|MongoTopologyClosed|PoolClosed|PoolCleared/.test(name) ||
    /ECONNREFUSED|connection .* closed|getaddrinfo|timed out/i.test(msg)
  ) {
    return new LifeboatError(
      'UNREACHABLE',
      `${what}: cannot reach the server (${msg.split('\n')[0].slice(0, 160)})`,
      {
        hint: 'check the URI host and port, that mongod is running, and the network/firewall/TLS settings',
        cause: e,
      },
    );
  }
  if (name === 'MongoParseError' || name === 'MongoInvalidArgumentError') {
    return new LifeboatError('USAGE', `invalid MongoDB URI or option: ${msg.split('\n')[0]}`, {
      hint: 'the URI looks like mongodb://user:pass@host:27017/?authSource=admin',
      cause: e,
    });
  }
  if (err?.code === 11000) {
    return new LifeboatError('CONFLICT', `${what}: duplicate key (${msg.split('\n')[0].slice(0, 200)})`, {
      hint: 'the target already holds documents with the same _id: restore with --drop, or into another namespace with --ns-from/--ns-to',
      cause: e,
    });
  }
  return new LifeboatError('INTERNAL', `${what}: ${msg.split('\n')[0]}`, { cause: e });
}

/** Connects and runs `hello`, so that a wrong address or password fails here with a clear message. */
export async function connectMongo(opts: ConnectOptions): Promise<MongoClient> {
  if (!opts.uri) {
    throw new LifeboatError('USAGE', 'no MongoDB URI given', {
      hint: 'pass --uri mongodb://host:27017 or set LIFEBOAT_MONGODB_URI',
    });
  }
  const options: MongoClientOptions = {
    serverSelectionTimeoutMS: opts.serverTimeoutMs ?? 30_000,
    connectTimeoutMS: Math.min(opts.serverTimeoutMs ?? 30_000, 20_000),
    appName: opts.appName ?? 'lifeboat',
    ignoreUndefined: false,
  };
  if (opts.username) options.auth = { username: opts.username, password: opts.password };
  if (opts.tls !== undefined) options.tls = opts.tls;
  if (opts.tlsCAFile) options.tlsCAFile = opts.tlsCAFile;
  if (opts.tlsCertificateKeyFile) options.tlsCertificateKeyFile = opts.tlsCertificateKeyFile;
  if (opts.tlsInsecure) options.tlsInsecure = true;
  // Imported here, not at the top: the driver costs ~30 MiB of RSS that non-MongoDB commands should not pay.
  const { MongoClient } = await import('mongodb');
  let client: MongoClient;
  try {
    client = new MongoClient(opts.uri, options);
  } catch (e) {
    throw mongoError(e, 'connecting');
  }
  let hello: Document;
  try {
    await client.connect();
    hello = await client.db('admin').command({ hello: 1 });
  } catch (e) {
    await client.close().catch(() => {});
    throw mongoError(e, `connecting to ${safeUri(opts.uri)}`);
  }
  const refusal = shardedRefusal(hello);
  if (refusal) {
    await client.close().catch(() => {});
    throw refusal;
  }
  return client;
}

/**
 * A sharded cluster, through a mongos (`hello.msg === 'isdbgrid'`) or a config server member
 * (`hello.configsvr`), is refused: a dump of it is not consistent across shards (chunk migrations and
 * per-shard oplogs; docs/mongodb.md "Sharded clusters" has the design that would make it so), and a dump of
 * the config server alone restores nothing. Replica sets and standalone servers are supported.
 */
export function shardedRefusal(hello: Document): LifeboatError | undefined {
  const role =
    hello.msg === 'isdbgrid'
      ? 'a mongos router of a sharded cluster'
      : hello.configsvr !== undefined
        ? 'a config server of a sharded cluster'
        : undefined;
  if (!role) return undefined;
  return new LifeboatError(
    'UNSUPPORTED',
    `the server is ${role}: Lifeboat backs up and restores replica sets and standalone servers, not sharded clusters`,
    {
      hint: 'back up each shard replica set with a tool that coordinates a common cluster time (e.g. Percona Backup for MongoDB); see docs/mongodb.md "Sharded clusters"',
    },
  );
}

export interface ServerInfo {
  version: string;
  /** True for FerretDB (it says so in buildInfo), which lacks some MongoDB features. */
  ferretdb: boolean;
  replicaSet?: string;
}

export async function serverInfo(client: MongoClient): Promise<ServerInfo> {
  const admin = client.db('admin');
  const build = await admin.command({ buildInfo: 1 });
  const hello = await admin.command({ hello: 1 });
  const info: ServerInfo = {
    version: String(build.version),
    ferretdb: Boolean(build.ferretdb || build.ferretdbVersion),
  };
  if (hello.setName) info.replicaSet = String(hello.setName);
  return info;
}
