/**
 * Azurite's blob service (the npm devDependency), on a free loopback port with a throw-away location.
 * Needed by: test/core/backend-azure.test.ts, storage-faults, repository tests on Azure, bench/cloud.ts.
 * `--disableProductStyleUrl` keeps the account in the path, so a proxy in front (test/env/fault-proxy.ts)
 * can use any host name.
 */
import path from 'node:path';
import { freePort, startServer, tempDir, waitForPort, PROJECT_ROOT, type RunningServer } from './index.ts';

export const AZURITE_ACCOUNT = 'devstoreaccount1';
/** Azurite's published well-known development key (not a secret). */
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface Azurite {
  port: number;
  /** http://127.0.0.1:PORT/devstoreaccount1 */
  endpoint: string;
  connectionString: string;
  /** A connection string whose blob endpoint is `endpoint` (e.g. a fault proxy in front of Azurite). */
  connectionStringFor(endpoint: string, key?: string): string;
  server: RunningServer;
  stop(): Promise<void>;
}

export function azuriteConnectionString(endpoint: string, key = AZURITE_KEY): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${key};BlobEndpoint=${endpoint};`;
}

export async function startAzurite(): Promise<Azurite> {
  const port = await freePort();
  const dir = await tempDir('lifeboat-azurite-');
  const main = path.join(PROJECT_ROOT, 'node_modules', 'azurite', 'dist', 'src', 'blob', 'main.js');
  const server = await startServer({
    name: 'azurite',
    command: process.execPath,
    args: [
      main,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      '--location',
      dir.path,
      '--skipApiVersionCheck',
      '--loose',
      '--silent',
      '--disableTelemetry',
      '--disableProductStyleUrl',
    ],
    ready: () => waitForPort(port),
  });
  const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  return {
    port,
    endpoint,
    connectionString: azuriteConnectionString(endpoint),
    connectionStringFor: (ep, key) => azuriteConnectionString(ep, key),
    server,
    async stop() {
      await server.stop();
      await dir.cleanup();
    },
  };
}
