/**
 * A Key Vault for tests, speaking the Key Vault REST API (secrets and RSA keys) over HTTPS, with the
 * bearer-challenge handshake the Azure SDK performs.
 *
 * THIS IS A FAKE, and says so: no real Key Vault emulator can be installed from the registries this
 * project may use (Lowkey Vault's jar is not served by the Maven Central we reach, and the Go emulators
 * are not on the Go module proxy; see docs/keys.md). So the tests talk to this in-process server over a
 * real TLS socket, through the real @azure/keyvault-* clients. It implements what Lifeboat uses, with
 * Key Vault's documented behaviour for it:
 * - 401 + `WWW-Authenticate: Bearer authorization=…, resource=https://vault.azure.net` to unauthenticated
 *   requests; the bearer token decides the caller's rights (`denied` gets 403 Forbidden);
 * - secrets: set (every write a new version), get (latest or by version), update attributes, delete
 *   (soft delete: the name is blocked until recovered or purged), get deleted, recover, purge;
 *   disabled versions answer 403 SecretDisabled;
 * - keys: create RSA / new version, get, update attributes, delete (soft), get deleted, recover,
 *   wrapkey/unwrapkey with RSA-OAEP-256 (and RSA-OAEP); disabled keys answer 403 KeyDisabled.
 * For the secrets layer (src/sources/secrets/), each from Microsoft's documentation:
 * - names `^[0-9a-zA-Z-]{1,127}$`, compared case-insensitively (Key Vault "object identifiers"); another
 *   name answers 400 BadParameter;
 * - a secret value is at most 25 KB ("About Azure Key Vault secrets": "a maximum size of 25k bytes");
 *   modelled as 25,600 UTF-8 bytes, answered with 400 BadParameter (the status for an oversized value is
 *   not documented; what matters is that the write fails);
 * - tags: at most 15 per object, names and values at most 256 characters (service limits, as issue 11
 *   designs for), else 400 BadParameter;
 * - list secrets (GET /secrets): pages of `maxresults` (default 25) with an absolute `nextLink`; items
 *   carry id, attributes, tags and contentType, never values; deleted secrets are not listed;
 * - recover is asynchronous: after POST …/recover the secret stays unavailable for `recoveryDelayMs`
 *   (GET 404, PUT 409 Conflict), as the SDK's recover poller expects;
 * - throttling: `throttle(n, retryAfterSeconds)` answers the next n requests 429 with Retry-After (Key
 *   Vault's "service limits": 429 Too Many Requests with Retry-After);
 * - versions: every set is a new version; `versionCount()` lets tests prove a write did not happen.
 * Anything else answers 501, so a test that strays beyond this surface fails loudly.
 */
import https from 'node:https';
import {
  constants,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import type net from 'node:net';
import { tempDir } from './index.ts';
import { makeTestTls, trustInThisProcess, type TestTls } from './tls.ts';

export const VALID_TOKEN = 'lifeboat-test-token';
export const DENIED_TOKEN = 'denied';

interface Attrs {
  enabled: boolean;
  created: number;
  updated: number;
  recoveryLevel: string;
  recoverableDays: number;
}

interface SecretVersion {
  version: string;
  value: string;
  contentType?: string;
  tags?: Record<string, string>;
  attributes: Attrs;
}

interface KeyVersion {
  version: string;
  priv: KeyObject;
  pub: KeyObject;
  n: string;
  e: string;
  keyOps: string[];
  tags?: Record<string, string>;
  attributes: Attrs;
}

interface Item<V> {
  versions: V[];
  deletedDate?: number;
  /** The name as first written: Key Vault keeps its case, and compares names without it. */
  displayName?: string;
  /** Set by recover: the secret is unavailable (GET 404, PUT 409) until this time (ms). */
  recoveringUntil?: number;
}

export interface KeyVaultOptions {
  /** How long a recovered secret stays unavailable (default 0). */
  recoveryDelayMs?: number;
}

const SECRET_NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;
const MAX_SECRET_BYTES = 25 * 1024;
const MAX_TAGS = 15;
const MAX_TAG_CHARS = 256;

export interface TestKeyVault {
  /** https://127.0.0.1:PORT — the vault URL. */
  url: string;
  tls: TestTls;
  /** Requests served, for assertions ("the key never left the vault"). */
  log: { method: string; path: string }[];
  /** Answers the next `count` requests with 429 and `Retry-After: retryAfterSeconds`. */
  throttle(count: number, retryAfterSeconds: number): void;
  /** 429s served so far. */
  throttled: number;
  /** Versions of a secret (0 when absent), or of every secret together without a name. */
  versionCount(name?: string): number;
  /** Makes the vault unreachable (connections refused) until `resume`. */
  stop(): Promise<void>;
  close(): Promise<void>;
}

const now = () => Math.floor(Date.now() / 1000);
const newAttrs = (enabled = true): Attrs => ({
  enabled,
  created: now(),
  updated: now(),
  recoveryLevel: 'Recoverable+Purgeable',
  recoverableDays: 90,
});
const b64u = (b: Buffer) => b.toString('base64url');

export async function startKeyVault(options: KeyVaultOptions = {}): Promise<TestKeyVault> {
  const dir = await tempDir('lifeboat-kv-');
  const certs = makeTestTls(dir.path);
  trustInThisProcess(certs.ca);
  const secrets = new Map<string, Item<SecretVersion>>();
  const keys = new Map<string, Item<KeyVersion>>();
  const log: { method: string; path: string }[] = [];
  let base = '';
  let throttleLeft = 0;
  let throttleRetryAfter = 1;
  let throttledCount = 0;

  const err = (status: number, code: string, message: string, inner?: string) => ({
    status,
    body: { error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } },
  });

  const secretBundle = (name: string, v: SecretVersion, withValue = true) => ({
    ...(withValue ? { value: v.value } : {}),
    id: `${base}/secrets/${name}/${v.version}`,
    contentType: v.contentType,
    tags: v.tags,
    attributes: v.attributes,
  });
  const keyBundle = (name: string, v: KeyVersion) => ({
    key: { kid: `${base}/keys/${name}/${v.version}`, kty: 'RSA', key_ops: v.keyOps, n: v.n, e: v.e },
    tags: v.tags,
    attributes: v.attributes,
  });
  const deletedInfo = (kind: 'secrets' | 'keys', name: string, item: Item<unknown>) => ({
    recoveryId: `${base}/deleted${kind}/${name}`,
    deletedDate: item.deletedDate,
    scheduledPurgeDate: (item.deletedDate ?? now()) + 90 * 86400,
  });

  function findVersion<V extends { version: string }>(
    item: Item<V>,
    version: string | undefined,
  ): V | undefined {
    if (!version) return item.versions[item.versions.length - 1];
    return item.versions.find((v) => v.version === version);
  }

  function badSecretWrite(name: string, body: Record<string, unknown>) {
    if (!SECRET_NAME_RE.test(name))
      return err(400, 'BadParameter', `The request URI contains an invalid name: ${name}`);
    if (Buffer.byteLength(String(body.value ?? ''), 'utf8') > MAX_SECRET_BYTES)
      return err(400, 'BadParameter', 'Secret value exceeds the maximum allowed size of 25 KB.');
    const tags = Object.entries((body.tags as Record<string, string> | undefined) ?? {});
    if (tags.length > MAX_TAGS)
      return err(400, 'BadParameter', `Too many tags: ${tags.length} (at most ${MAX_TAGS}).`);
    for (const [k, v] of tags)
      if (k.length > MAX_TAG_CHARS || String(v).length > MAX_TAG_CHARS)
        return err(400, 'BadParameter', `Tag names and values are limited to ${MAX_TAG_CHARS} characters.`);
    return undefined;
  }

  function listSecrets(query: URLSearchParams) {
    const size = Math.min(25, Number(query.get('maxresults') ?? 25) || 25);
    const skip = Number(query.get('$skiptoken') ?? 0);
    const live = [...secrets.entries()]
      .filter(([, it]) => !it.deletedDate && !(it.recoveringUntil && it.recoveringUntil > Date.now()))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    const page = live.slice(skip, skip + size).map(([name, it]) => {
      const v = it.versions[it.versions.length - 1];
      return {
        id: `${base}/secrets/${it.displayName ?? name}`,
        attributes: v.attributes,
        tags: v.tags,
        contentType: v.contentType,
      };
    });
    const more = skip + size < live.length;
    return {
      status: 200,
      body: {
        value: page,
        nextLink: more
          ? `${base}/secrets?api-version=7.5&maxresults=${size}&$skiptoken=${skip + size}`
          : null,
      },
    };
  }

  function handle(
    method: string,
    parts: string[],
    body: Record<string, unknown>,
    query: URLSearchParams,
  ): { status: number; body?: unknown } {
    const [collection, name, a, b] = parts;
    // ---- secrets
    if (collection === 'secrets' && !name && method === 'GET') return listSecrets(query);
    if (collection === 'secrets' && name) {
      const item = secrets.get(name.toLowerCase());
      if (item?.recoveringUntil && item.recoveringUntil <= Date.now()) delete item.recoveringUntil;
      if (item?.recoveringUntil) {
        if (method === 'PUT')
          return err(409, 'Conflict', `Secret ${name} is currently being recovered; try again later.`);
        return err(404, 'SecretNotFound', `A secret with (name/id) ${name} was not found in this key vault.`);
      }
      if (method === 'PUT' && a === undefined) {
        const bad = badSecretWrite(name, body);
        if (bad) return bad;
        if (item?.deletedDate) {
          return err(
            409,
            'Conflict',
            `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
            'ObjectIsDeletedButRecoverable',
          );
        }
        const v: SecretVersion = {
          version: randomBytes(16).toString('hex'),
          value: String(body.value ?? ''),
          contentType: body.contentType as string | undefined,
          tags: body.tags as Record<string, string> | undefined,
          attributes: newAttrs((body.attributes as { enabled?: boolean } | undefined)?.enabled ?? true),
        };
        const it: Item<SecretVersion> = item ?? { versions: [], displayName: name };
        it.versions.push(v);
        secrets.set(name.toLowerCase(), it);
        return { status: 200, body: secretBundle(name, v) };
      }
      if (!item || item.deletedDate)
        return err(404, 'SecretNotFound', `A secret with (name/id) ${name} was not found in this key vault.`);
      if (method === 'GET' && a === 'versions') {
        return {
          status: 200,
          body: {
            value: item.versions.map((v) => ({
              id: `${base}/secrets/${name}/${v.version}`,
              attributes: v.attributes,
              tags: v.tags,
              contentType: v.contentType,
            })),
            nextLink: null,
          },
        };
      }
      const v = findVersion(item, a);
      if (!v)
        return err(
          404,
          'SecretNotFound',
          `A secret with (name/id) ${name}/${a} was not found in this key vault.`,
        );
      if (method === 'GET') {
        if (!v.attributes.enabled)
          return err(
            403,
            'Forbidden',
            'Operation get is not allowed on a disabled secret.',
            'SecretDisabled',
          );
        return { status: 200, body: secretBundle(name, v) };
      }
      if (method === 'PATCH') {
        const attrs = body.attributes as { enabled?: boolean } | undefined;
        if (attrs?.enabled !== undefined) v.attributes.enabled = attrs.enabled;
        if (body.tags) v.tags = body.tags as Record<string, string>;
        v.attributes.updated = now();
        return { status: 200, body: secretBundle(name, v, false) };
      }
      if (method === 'DELETE' && a === undefined) {
        item.deletedDate = now();
        const latest = item.versions[item.versions.length - 1];
        return {
          status: 200,
          body: { ...secretBundle(name, latest, false), ...deletedInfo('secrets', name, item) },
        };
      }
    }
    if (collection === 'deletedsecrets' && name) {
      const item = secrets.get(name.toLowerCase());
      if (!item?.deletedDate) return err(404, 'SecretNotFound', `Deleted Secret not found: ${name}`);
      const latest = item.versions[item.versions.length - 1];
      if (method === 'GET')
        return {
          status: 200,
          body: { ...secretBundle(name, latest, false), ...deletedInfo('secrets', name, item) },
        };
      if (method === 'POST' && a === 'recover') {
        delete item.deletedDate;
        if (options.recoveryDelayMs) item.recoveringUntil = Date.now() + options.recoveryDelayMs;
        return { status: 200, body: secretBundle(name, latest, false) };
      }
      if (method === 'DELETE') {
        secrets.delete(name.toLowerCase());
        return { status: 204 };
      }
    }
    // ---- keys
    if (collection === 'keys' && name) {
      const item = keys.get(name.toLowerCase());
      if (method === 'POST' && (a === 'create' || a === 'rotate')) {
        if (item?.deletedDate) {
          return err(
            409,
            'Conflict',
            `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.`,
            'ObjectIsDeletedButRecoverable',
          );
        }
        if (a === 'create' && body.kty !== 'RSA' && body.kty !== 'RSA-HSM')
          return err(400, 'BadParameter', 'only RSA keys are emulated');
        if (a === 'rotate' && !item)
          return err(404, 'KeyNotFound', `A key with (name/id) ${name} was not found in this key vault.`);
        const { privateKey, publicKey } = generateKeyPairSync('rsa', {
          modulusLength: Number(body.key_size ?? 2048),
        });
        const jwk = publicKey.export({ format: 'jwk' });
        const prev = item?.versions[item.versions.length - 1];
        const v: KeyVersion = {
          version: randomBytes(16).toString('hex'),
          priv: privateKey,
          pub: publicKey,
          n: jwk.n!,
          e: jwk.e!,
          keyOps: (body.key_ops as string[] | undefined) ??
            prev?.keyOps ?? ['wrapKey', 'unwrapKey', 'encrypt', 'decrypt'],
          tags: (body.tags as Record<string, string> | undefined) ?? prev?.tags,
          attributes: newAttrs((body.attributes as { enabled?: boolean } | undefined)?.enabled ?? true),
        };
        const it = item ?? { versions: [] };
        it.versions.push(v);
        keys.set(name.toLowerCase(), it);
        return { status: 200, body: keyBundle(name, v) };
      }
      if (!item || item.deletedDate)
        return err(404, 'KeyNotFound', `A key with (name/id) ${name} was not found in this key vault.`);
      const version = a === 'wrapkey' || a === 'unwrapkey' ? undefined : a;
      const op = a === 'wrapkey' || a === 'unwrapkey' ? a : b;
      const v = findVersion(item, version);
      if (!v)
        return err(
          404,
          'KeyNotFound',
          `A key with (name/id) ${name}/${version} was not found in this key vault.`,
        );
      if (method === 'GET' && !op) {
        if (!v.attributes.enabled)
          return err(403, 'Forbidden', 'Operation get is not allowed on a disabled key.', 'KeyDisabled');
        return { status: 200, body: keyBundle(name, v) };
      }
      if (method === 'PATCH' && !op) {
        const attrs = body.attributes as { enabled?: boolean } | undefined;
        if (attrs?.enabled !== undefined) v.attributes.enabled = attrs.enabled;
        v.attributes.updated = now();
        return { status: 200, body: keyBundle(name, v) };
      }
      if (method === 'DELETE' && a === undefined) {
        item.deletedDate = now();
        return {
          status: 200,
          body: {
            ...keyBundle(name, item.versions[item.versions.length - 1]),
            ...deletedInfo('keys', name, item),
          },
        };
      }
      if (method === 'POST' && (op === 'wrapkey' || op === 'unwrapkey')) {
        if (!v.attributes.enabled)
          return err(
            403,
            'Forbidden',
            `Operation ${op === 'wrapkey' ? 'wrapKey' : 'unwrapKey'} is not allowed on a disabled key.`,
            'KeyDisabled',
          );
        const alg = String(body.alg);
        if (alg !== 'RSA-OAEP-256' && alg !== 'RSA-OAEP')
          return err(400, 'BadParameter', `algorithm ${alg} is not emulated`);
        const padding = {
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: alg === 'RSA-OAEP-256' ? 'sha256' : 'sha1',
        };
        const input = Buffer.from(String(body.value), 'base64url');
        try {
          const out =
            op === 'wrapkey'
              ? publicEncrypt({ key: v.pub, ...padding }, input)
              : privateDecrypt({ key: v.priv, ...padding }, input);
          return { status: 200, body: { kid: `${base}/keys/${name}/${v.version}`, value: b64u(out) } };
        } catch {
          return err(400, 'BadParameter', 'The parameter is incorrect (decryption failed).');
        }
      }
    }
    if (collection === 'deletedkeys' && name) {
      const item = keys.get(name.toLowerCase());
      if (!item?.deletedDate) return err(404, 'KeyNotFound', `Deleted Key not found: ${name}`);
      if (method === 'GET')
        return {
          status: 200,
          body: {
            ...keyBundle(name, item.versions[item.versions.length - 1]),
            ...deletedInfo('keys', name, item),
          },
        };
      if (method === 'POST' && a === 'recover') {
        delete item.deletedDate;
        return { status: 200, body: keyBundle(name, item.versions[item.versions.length - 1]) };
      }
      if (method === 'DELETE') {
        keys.delete(name.toLowerCase());
        return { status: 204 };
      }
    }
    return err(501, 'NotImplemented', `${method} /${parts.join('/')} is not emulated`);
  }

  const sockets = new Set<{ destroy(): void; on(ev: 'close', f: () => void): unknown }>();
  const server = https.createServer({ cert: certs.cert, key: certs.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', base);
      log.push({ method: req.method ?? 'GET', path: url.pathname });
      const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
        const text = body === undefined ? '' : JSON.stringify(body);
        res.writeHead(status, {
          'content-type': 'application/json; charset=utf-8',
          'x-ms-keyvault-service-version': '1.9.0.0',
          ...headers,
        });
        res.end(text);
      };
      const auth = req.headers.authorization;
      if (!auth?.startsWith('Bearer ')) {
        return send(
          401,
          { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } },
          {
            'www-authenticate':
              'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"',
          },
        );
      }
      if (throttleLeft > 0) {
        throttleLeft--;
        throttledCount++;
        return send(
          429,
          {
            error: {
              code: 'Throttled',
              message: 'Request was not processed because too many requests were received.',
            },
          },
          { 'retry-after': String(throttleRetryAfter) },
        );
      }
      const token = auth.slice('Bearer '.length);
      if (token === DENIED_TOKEN) {
        return send(403, {
          error: {
            code: 'Forbidden',
            message: `Caller is not authorized to perform action on resource. Action: '${req.method} ${url.pathname}'`,
            innererror: { code: 'ForbiddenByRbac' },
          },
        });
      }
      if (token !== VALID_TOKEN)
        return send(401, { error: { code: 'Unauthorized', message: 'AKV10032: Invalid issuer.' } });
      let body: Record<string, unknown> = {};
      try {
        if (chunks.length) body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send(400, { error: { code: 'BadParameter', message: 'invalid JSON' } });
      }
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      const r = handle(req.method ?? 'GET', parts, body, url.searchParams);
      send(r.status, r.body);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  base = `https://127.0.0.1:${port}`;
  const stopServer = async () => {
    for (const s of sockets) s.destroy();
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    url: base,
    tls: certs,
    log,
    throttle(count, retryAfterSeconds) {
      throttleLeft = count;
      throttleRetryAfter = retryAfterSeconds;
    },
    get throttled() {
      return throttledCount;
    },
    versionCount(name) {
      if (name !== undefined) return secrets.get(name.toLowerCase())?.versions.length ?? 0;
      return [...secrets.values()].reduce((n, it) => n + it.versions.length, 0);
    },
    stop: stopServer,
    async close() {
      await stopServer();
      await dir.cleanup();
    },
  };
}

/** The credential tests hand to the Key Vault clients: a fixed token the test vault accepts (or denies). */
export function staticCredential(token = VALID_TOKEN) {
  return {
    async getToken() {
      return { token, expiresOnTimestamp: Date.now() + 3600_000 };
    },
  };
}
