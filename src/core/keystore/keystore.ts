/**
 * A keystore protects the repository master key. The master key itself is random and never changes
 * (so rotating a key-encryption key never rewrites data); what is stored in the repository under
 * `keys/<id>` is a KeyRecord: the master key wrapped by the keystore, plus the non-secret parameters
 * needed to unwrap it (salt and scrypt cost, a vault reference, …). Never the key in clear.
 *
 * Implementations: passphrase (scrypt), keyfile (local 0600 file outside the repository),
 * Azure Key Vault (secret mode and wrap-key mode).
 */

export interface KeyRecord {
  /** Which keystore kind wrote this record; `unwrap` is only tried by keystores of the same kind. */
  kind: string;
  created: string;
  /** Keystore-specific, non-secret fields (salt, KDF parameters, vault URL, key version, wrapped bytes). */
  [field: string]: unknown;
}

export interface KeyContext {
  repositoryId: string;
}

export interface Keystore {
  readonly kind: string;
  /** Non-secret description for logs and `key list` (e.g. `keyfile /home/op/.config/lifeboat/default.key`). */
  readonly description: string;
  /** Protects the master key; the result is written to `keys/<id>` as JSON. */
  wrap(masterKey: Buffer, context: KeyContext): Promise<KeyRecord>;
  /**
   * Recovers the master key. Throws LifeboatError WRONG_KEY when this keystore's secret does not open the
   * record (wrong passphrase, different key file), KEY_UNAVAILABLE when the key cannot be reached.
   */
  unwrap(record: KeyRecord, context: KeyContext): Promise<Buffer>;
  /** Called when a record is removed (key rotation), so external copies (vault secrets) can be retired. */
  forget?(record: KeyRecord, context: KeyContext): Promise<void>;
}
