// Needs: Azurite (test/env/azurite.ts). Azure-only behaviour beyond the shared conformance suite
// (which test/core/backend-conformance.test.ts runs for every backend).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AzureBackend } from '../../src/core/storage/azure.ts';
import { sharedAzurite } from '../env/backends.ts';
import { AZURITE_ACCOUNT } from '../env/azurite.ts';
import { id } from './backend-conformance.ts';

test('azure: access tier applies to packs only, small and block uploads alike', async () => {
  const az = await sharedAzurite();
  const container = `tier-${randomBytes(5).toString('hex')}`;
  const b = new AzureBackend(`azure://${AZURITE_ACCOUNT}/${container}/p`, {
    connectionString: az.connectionString,
    accessTier: 'Cool',
    blockSize: 4 * 1024 * 1024,
    env: {},
  });
  await b.create();
  const small = { type: 'data' as const, name: id() };
  const large = { type: 'data' as const, name: id() };
  const index = { type: 'index' as const, name: id() };
  await b.save(small, randomBytes(100));
  await b.save(large, randomBytes(9 * 1024 * 1024));
  await b.save(index, randomBytes(100));
  const tier = async (key: string) => (await b.container.getBlockBlobClient(key).getProperties()).accessTier;
  assert.equal(await tier(`p/data/${small.name.slice(0, 2)}/${small.name}`), 'Cool');
  assert.equal(await tier(`p/data/${large.name.slice(0, 2)}/${large.name}`), 'Cool');
  assert.notEqual(await tier(`p/index/${index.name}`), 'Cool');
  await b.container.deleteIfExists();
});

test('azure: the connection string endpoint wins over the URL account', async () => {
  const az = await sharedAzurite();
  // The URL names an account that does not exist anywhere; Azurite is reached through the connection string.
  const b = new AzureBackend(`azure://someprodaccount/cs-${randomBytes(5).toString('hex')}`, {
    env: { AZURE_STORAGE_CONNECTION_STRING: az.connectionString },
  });
  await b.create();
  const h = { type: 'keys' as const, name: id() };
  await b.save(h, Buffer.from('k'));
  assert.equal((await b.load(h)).toString(), 'k');
  assert.equal(b.authMethod, 'connection-string');
  await b.container.deleteIfExists();
});
