/**
 * A real MongoDB-wire server for the tests: FerretDB v1.24.2 on SQLite in a temporary directory, on a free
 * loopback port. Ready once it answers `hello` through the official driver (a listening socket alone is
 * not enough: FerretDB opens its port before the SQLite backend is usable).
 *
 * `LIFEBOAT_TEST_MONGODB_URI=mongodb://user:pass@host:27017/?replicaSet=rs0` runs the same tests against
 * a real MongoDB instead; `isFerretDB` then is false and tests that need features FerretDB lacks run too.
 * `stop()` leaves such an external server running (tests drop their own databases).
 */
import { MongoClient } from 'mongodb';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ensureTool } from '../../scripts/tools/toolbox.ts';
import { ferretdb } from '../../scripts/tools/ferretdb.ts';
import { freePort, startServer, tempDir } from './index.ts';

export interface MongoTestServer {
  uri: string;
  /** True when the server is the FerretDB this module started (not LIFEBOAT_TEST_MONGODB_URI). */
  isFerretDB: boolean;
  /** Graceful stop and removal of the data directory. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would (tests of interrupted restores). A no-op for an external server. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and data after kill()/a crash (FerretDB only). */
  restart(): Promise<void>;
}

export async function waitForHello(uri: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 2000, connectTimeoutMS: 2000 });
    try {
      await client.connect();
      await client.db('admin').command({ hello: 1 });
      return;
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await client.close().catch(() => {});
    }
  }
  throw new Error(`no hello from ${uri} after ${timeoutMs} ms: ${(last as Error)?.message}`);
}

export async function startMongo(): Promise<MongoTestServer> {
  const external = process.env.LIFEBOAT_TEST_MONGODB_URI;
  if (external) {
    await waitForHello(external, 20_000);
    return {
      uri: external,
      isFerretDB: false,
      stop: async () => {},
      kill: async () => {},
      restart: async () => {
        throw new Error('restart() needs the FerretDB the tests start, not LIFEBOAT_TEST_MONGODB_URI');
      },
    };
  }
  return startFerretDB();
}

export interface FerretDBOptions {
  /** Require SCRAM authentication, with this user created in `admin` at start-up. */
  auth?: { username: string; password: string };
  /**
   * Act as a member of this replica set, with FerretDB's oplog emulation on (a capped `local.oplog.rs`
   * that records inserts, updates and deletes): what `backup --oplog` captures.
   */
  replSetName?: string;
}

export async function startFerretDB(options: FerretDBOptions = {}): Promise<MongoTestServer> {
  const bin = path.join(await ensureTool(ferretdb), 'ferretdb');
  const dir = await tempDir('lifeboat-ferretdb-');
  const port = await freePort();
  const uri = `mongodb://127.0.0.1:${port}/`;
  const readyUri = options.auth
    ? `mongodb://${encodeURIComponent(options.auth.username)}:${encodeURIComponent(options.auth.password)}@127.0.0.1:${port}/?authSource=admin`
    : uri;
  await mkdir(path.join(dir.path, 'data'));
  const launch = () =>
    startServer({
      name: 'ferretdb',
      command: bin,
      args: [
        '--handler=sqlite',
        `--sqlite-url=file:${dir.path}/data/`,
        `--state-dir=${dir.path}`,
        `--listen-addr=127.0.0.1:${port}`,
        '--debug-addr=-',
        '--telemetry=disable',
        '--log-level=warn',
        ...(options.auth
          ? [
              '--test-enable-new-auth',
              `--setup-username=${options.auth.username}`,
              `--setup-password=${options.auth.password}`,
              '--setup-database=admin',
            ]
          : []),
        ...(options.replSetName ? [`--repl-set-name=${options.replSetName}`] : []),
      ],
      logFile: path.join(dir.path, `ferretdb-${Date.now()}.log`),
      ready: () => waitForHello(readyUri),
    });
  try {
    let server = await launch();
    if (options.replSetName) {
      // directConnection: FerretDB's hello names the replica set but not a usable primary topology.
      const client = new MongoClient(`${readyUri}${readyUri.includes('?') ? '&' : '?'}directConnection=true`);
      try {
        await client.db('local').createCollection('oplog.rs', { capped: true, size: 256 * 1024 * 1024 });
      } finally {
        await client.close();
      }
    }
    return {
      uri,
      isFerretDB: true,
      async stop() {
        await server.stop();
        await dir.cleanup();
      },
      async kill() {
        await server.kill();
      },
      async restart() {
        await server.kill();
        server = await launch();
      },
    };
  } catch (e) {
    await dir.cleanup();
    throw e;
  }
}
