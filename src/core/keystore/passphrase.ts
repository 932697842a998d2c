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
