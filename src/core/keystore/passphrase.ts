/**
 * Passphrase keystore: scrypt turns the passphrase into a key-encryption key that wraps the master key
 * (AES-256-GCM). The salt and cost parameters are stored in the key record; the passphrase never is.
 */
import { randomBytes, scrypt as scryptCb, type ScryptOptions } from 'node:crypto';
import { LifeboatError } from '../errors.ts';
import { open, seal } from '../crypto.ts';
import type { KeyContext, KeyRecord, Keystore } from './keystore.ts';

function scrypt(password: string, salt: Buffer, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, 32, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** 2^15 × 8 × 1: ~100 ms and 32 MiB on this class of machine, restic's order of magnitude. */
export const DEFAULT_SCRYPT = { N: 32768, r: 8, p: 1 };

/** Bounds on a stored scrypt cost: N a power of two, at most 1 GiB of memory (the default uses 32 MiB). */
const MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024;

function validCost({ N, r, p }: { N: number; r: number; p: number }): boolean {
  return (
    Number.isInteger(N) &&
    N >= 2 &&
    N <= 2 ** 24 &&
    (N & (N - 1)) === 0 &&
    Number.isInteger(r) &&
    r >= 1 &&
    r <= 64 &&
    Number.isInteger(p) &&
    p >= 1 &&
    p <= 16 &&
    128 * N * r <= MAX_SCRYPT_MEMORY
  );
}

export class PassphraseKeystore implements Keystore {
  readonly kind = 'passphrase';
  readonly description: string;
  private readonly passphrase: string;
  private readonly cost: { N: number; r: number; p: number };

  constructor(passphrase: string, source: string, cost = DEFAULT_SCRYPT) {
    if (!passphrase)
      throw new LifeboatError('USAGE', `empty passphrase from ${source}`, {
        hint: 'set a non-empty passphrase',
      });
    this.passphrase = passphrase;
    this.description = `passphrase (${source})`;
    this.cost = cost;
  }

  async wrap(masterKey: Buffer, context: KeyContext): Promise<KeyRecord> {
    const salt = randomBytes(32);
    const kek = await this.derive(salt, this.cost);
    return {
      kind: this.kind,
      created: new Date().toISOString(),
      kdf: 'scrypt',
      ...this.cost,
      salt: salt.toString('base64'),
      wrapped: seal(kek, masterKey, `key:${context.repositoryId}`).toString('base64'),
    };
  }

  async unwrap(record: KeyRecord, context: KeyContext): Promise<Buffer> {
    const cost = { N: Number(record.N), r: Number(record.r), p: Number(record.p) };
    // The cost comes from the stored record, read before anything is authenticated: a damaged record
    // (one written before key records had checksums) must not reach scrypt, which throws a bare
    // RangeError on a bad N or tries to allocate 128·N·r bytes for a huge one.
    if (!validCost(cost)) {
      throw new LifeboatError(
        'INTEGRITY',
        `the key record's scrypt cost (N=${record.N}, r=${record.r}, p=${record.p}) is out of range`,
        {
          hint: 'restore keys/ from a copy of the repository, or open it with another key and remove this one with `lifeboat key remove`',
        },
      );
    }
    const kek = await this.derive(Buffer.from(String(record.salt), 'base64'), cost);
    try {
      return open(kek, Buffer.from(String(record.wrapped), 'base64'), 'key', `key:${context.repositoryId}`);
    } catch {
      throw new LifeboatError('WRONG_KEY', 'wrong passphrase for this repository', {
        hint: 'check LIFEBOAT_PASSWORD / --password-file; nothing was read or written',
      });
    }
  }

  private derive(salt: Buffer, cost: { N: number; r: number; p: number }): Promise<Buffer> {
    return scrypt(this.passphrase, salt, { ...cost, maxmem: 256 * cost.N * cost.r + 1024 * 1024 });
  }
}
