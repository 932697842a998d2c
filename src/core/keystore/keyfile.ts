/**
 * Key-file keystore: a random 32-byte key-encryption key in a local file (mode 0600) kept outside the
 * repository — by default in ~/.config/lifeboat/ — that wraps the master key. The record stores a keyed
 * fingerprint of the file's key so the wrong file is named as such instead of failing opaquely.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open as openFile, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LifeboatError, fromSystemError } from '../errors.ts';
import { open, seal } from '../crypto.ts';
import type { KeyContext, KeyRecord, Keystore } from './keystore.ts';

export class KeyFileKeystore implements Keystore {
  readonly kind = 'keyfile';
  readonly description: string;
  readonly file: string;

  constructor(file: string) {
    this.file = path.resolve(file);
    this.description = `key file ${this.file}`;
  }

  /** Creates the key file (0600, directory 0700) if it does not exist yet. */
  async ensureExists(): Promise<void> {
    try {
      await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      const fh = await openFile(this.file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
      try {
        await fh.writeFile(randomBytes(32).toString('base64') + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw fromSystemError(e, `creating key file ${this.file}`);
    }
  }

  private async kek(): Promise<Buffer> {
    let text: string;
    try {
      const s = await stat(this.file);
      if ((s.mode & 0o077) !== 0) {
        // A readable key file is a leaked key: tighten it rather than refuse, and say so.
        await chmod(this.file, 0o600);
        process.emitWarning(`key file ${this.file} was readable by others; mode set to 0600`);
      }
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new LifeboatError('KEY_UNAVAILABLE', `key file ${this.file} does not exist`, {
          hint: 'restore the key file from your key backup, or point --key-file / LIFEBOAT_KEY_FILE at it',
        });
      }
      throw fromSystemError(e, `reading key file ${this.file}`);
    }
    const key = Buffer.from(text.trim(), 'base64');
    if (key.length !== 32) {
      throw new LifeboatError('KEY_UNAVAILABLE', `key file ${this.file} does not hold a 32-byte base64 key`, {
        hint: 'use the key file created by `lifeboat init` (or `lifeboat key add`)',
      });
    }
    return key;
  }

  private static fingerprint(kek: Buffer): string {
    return createHmac('sha256', kek).update('lifeboat keyfile fingerprint').digest('hex').slice(0, 16);
  }

  async wrap(masterKey: Buffer, context: KeyContext): Promise<KeyRecord> {
    await this.ensureExists();
    const kek = await this.kek();
    return {
      kind: this.kind,
      created: new Date().toISOString(),
      fingerprint: KeyFileKeystore.fingerprint(kek),
      wrapped: seal(kek, masterKey, `key:${context.repositoryId}`).toString('base64'),
    };
  }

  async unwrap(record: KeyRecord, context: KeyContext): Promise<Buffer> {
    const kek = await this.kek();
    if (record.fingerprint !== KeyFileKeystore.fingerprint(kek)) {
      throw new LifeboatError('WRONG_KEY', `key file ${this.file} is not a key of this repository`, {
        hint: 'point --key-file / LIFEBOAT_KEY_FILE at the key file used with this repository',
      });
    }
    try {
      return open(kek, Buffer.from(String(record.wrapped), 'base64'), 'key', `key:${context.repositoryId}`);
    } catch {
      throw new LifeboatError('WRONG_KEY', `key file ${this.file} does not open this repository's key`, {
        hint: 'the key record is damaged or belongs to another repository',
      });
    }
  }
}
