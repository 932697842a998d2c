/**
 * The test vault's Key Vault behaviour that the secrets layer relies on (test/env/keyvault.ts lists it
 * with its sources), driven through the real @azure/keyvault-secrets client.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SecretClient } from '@azure/keyvault-secrets';
import { startKeyVault, staticCredential, type TestKeyVault } from '../env/keyvault.ts';

describe('test Key Vault: limits, listing, delayed recovery', () => {
  let kv: TestKeyVault;
  let client: SecretClient;
  const status = (p: Promise<unknown>) =>
    p.then(
      () => 200,
      (e: { statusCode?: number }) => e.statusCode,
    );

  before(async () => {
    kv = await startKeyVault({ recoveryDelayMs: 400 });
    client = new SecretClient(kv.url, staticCredential(), {
      disableChallengeResourceVerification: true,
      retryOptions: { maxRetries: 0 },
    });
  });
  after(() => kv?.close());

  test('names, value size and tags are limited as documented (400 BadParameter)', async () => {
    assert.equal(await status(client.setSecret('has.dot', 'v')), 400);
    assert.equal(await status(client.setSecret('x'.repeat(128), 'v')), 400);
    assert.equal(await status(client.setSecret('x'.repeat(127), 'v')), 200);
    assert.equal(await status(client.setSecret('big', 'a'.repeat(25 * 1024 + 1))), 400);
    assert.equal(await status(client.setSecret('big', 'a'.repeat(25 * 1024))), 200);
    const tags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`t${i}`, 'v']));
    assert.equal(await status(client.setSecret('tagged', 'v', { tags: tags(16) })), 400);
    assert.equal(await status(client.setSecret('tagged', 'v', { tags: { k: 'v'.repeat(257) } })), 400);
    assert.equal(await status(client.setSecret('tagged', 'v', { tags: tags(15) })), 200);
    assert.equal(kv.versionCount('tagged'), 1, 'rejected writes make no version');
  });

  test('listing pages through every secret, with tags and without values', async () => {
    for (let i = 0; i < 30; i++) await client.setSecret(`many-${i}`, 'v', { tags: { i: String(i) } });
    const seen = new Map<string, string | undefined>();
    for await (const p of client.listPropertiesOfSecrets()) seen.set(p.name, p.tags?.i);
    assert.equal([...seen.keys()].filter((n) => n.startsWith('many-')).length, 30);
    assert.equal(seen.get('many-29'), '29');
    assert.ok(kv.log.filter((l) => l.path === '/secrets').length >= 2, 'more than one page');
  });

  test('a recovered secret is unavailable for a moment: GET 404, PUT 409', async () => {
    await client.setSecret('gone', 'v1');
    await (await client.beginDeleteSecret('gone')).pollUntilDone();
    assert.equal(await status(client.setSecret('gone', 'v2')), 409, 'deleted but recoverable');
    await client.beginRecoverDeletedSecret('gone'); // not waiting for the poller
    assert.equal(await status(client.getSecret('gone')), 404);
    assert.equal(await status(client.setSecret('gone', 'v2')), 409);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await client.getSecret('gone')).value, 'v1');
  });

  test('throttling answers 429 with Retry-After', async () => {
    kv.throttle(1, 2);
    const e = await client
      .getSecret('gone')
      .catch(
        (err: { statusCode?: number; response?: { headers: { get(n: string): string | undefined } } }) => err,
      );
    assert.equal((e as { statusCode?: number }).statusCode, 429);
    assert.equal(
      (e as { response?: { headers: { get(n: string): string | undefined } } }).response?.headers.get(
        'retry-after',
      ),
      '2',
    );
  });
});
