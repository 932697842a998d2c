/**
 * Users and roles (`--include-users`), as a full-instance mongodump/mongorestore handles them: backed up as
 * the raw documents of `admin.system.users` and `admin.system.roles` (credentials stay as the server's
 * salted SCRAM hashes, encrypted in the repository like every item), exported under those names so
 * mongorestore restores them too, and restored the way mongorestore does: the documents go into
 * temporary collections which the server merges into its own with `_mergeAuthzCollections` (the only
 * way to restore a user without knowing the password). With `--drop`, users and roles not in the
 * snapshot are removed, as with mongorestore.
 */
import type { Document } from 'bson';
import type { MongoClient } from 'mongodb';
import { LifeboatError } from '../../core/errors.ts';
import type { Repository } from '../../core/repository/repository.ts';
import type { Item } from '../../core/repository/model.ts';
import { decodeDocument, splitBson } from './bson-stream.ts';
import { mongoError } from './connect.ts';
import { EXACT_BSON, type CollectionMetadata } from './metadata.ts';

export const AUTHZ_DB = 'admin';
export const AUTHZ_COLLECTIONS = ['system.users', 'system.roles'] as const;

const TEMP = { users: 'lifeboat_tempusers', roles: 'lifeboat_temproles' } as const;

export function isAuthzNamespace(db: string, collection: string): boolean {
  return db === AUTHZ_DB && (AUTHZ_COLLECTIONS as readonly string[]).includes(collection);
}

/** The users and roles collections the server has, with their metadata, for the backup plan. */
export async function planUsersAndRoles(
  client: MongoClient,
): Promise<{ collection: string; metadata: CollectionMetadata }[]> {
  const admin = client.db(AUTHZ_DB);
  const out: { collection: string; metadata: CollectionMetadata }[] = [];
  for (const name of AUTHZ_COLLECTIONS) {
    const info = await admin.listCollections({ name }).next();
    if (!info) continue;
    const indexes = await admin.collection(name).listIndexes().toArray();
    out.push({
      collection: name,
      metadata: { options: (info as Document).options ?? {}, indexes, collectionName: name },
    });
  }
  return out;
}

/** Fails before anything is touched when the target cannot take users back. */
export async function assertCanRestoreUsers(client: MongoClient): Promise<void> {
  let commands: Document;
  try {
    commands = (await client.db(AUTHZ_DB).command({ listCommands: 1 })).commands as Document;
  } catch (e) {
    throw mongoError(e, 'listing the server commands');
  }
  if (!commands || !('_mergeAuthzCollections' in commands)) {
    throw new LifeboatError(
      'UNSUPPORTED',
      '--include-users: the server has no _mergeAuthzCollections, so users and roles cannot be restored with their credentials',
      {
        hint: 'restore into MongoDB, or without --include-users and recreate the users with createUser',
      },
    );
  }
}

export interface UsersRestored {
  users: number;
  roles: number;
}

/** Merges the snapshot's users and roles into the server's (after the data, like mongorestore). */
export async function restoreUsersAndRoles(
  client: MongoClient,
  repo: Repository,
  items: Item[],
  drop: boolean,
): Promise<UsersRestored> {
  const admin = client.db(AUTHZ_DB);
  const result: UsersRestored = { users: 0, roles: 0 };
  const expected: { user: string; db: string }[] = [];
  try {
    for (const t of Object.values(TEMP))
      await admin
        .collection(t)
        .drop()
        .catch(() => {});
    for (const item of items) {
      const isUsers = item.name.endsWith('.system.users');
      const temp = admin.collection(isUsers ? TEMP.users : TEMP.roles);
      await admin.createCollection(temp.collectionName);
      let batch: Document[] = [];
      for await (const raw of splitBson(repo.readItem(item), `snapshot item ${item.name}`)) {
        const doc = decodeDocument(raw, `snapshot item ${item.name}`, EXACT_BSON);
        batch.push(doc);
        if (isUsers) {
          result.users++;
          expected.push({ user: String(doc.user), db: String(doc.db) });
        } else result.roles++;
        if (batch.length >= 1000) {
          await temp.insertMany(batch);
          batch = [];
        }
      }
      if (batch.length) await temp.insertMany(batch);
    }
    const command: Document = { _mergeAuthzCollections: 1, drop, db: '' };
    if (items.some((i) => i.name.endsWith('.system.users')))
      command.tempUsersCollection = `${AUTHZ_DB}.${TEMP.users}`;
    if (items.some((i) => i.name.endsWith('.system.roles')))
      command.tempRolesCollection = `${AUTHZ_DB}.${TEMP.roles}`;
    await admin.command(command);
    // Verified by asking the server for each user, as an operator would.
    for (const u of expected) {
      const found = await client.db(u.db).command({ usersInfo: { user: u.user, db: u.db } });
      if (!Array.isArray(found.users) || found.users.length !== 1) {
        throw new LifeboatError('VERIFY_FAILED', `user ${u.db}.${u.user} is missing after the restore`, {
          hint: 'check the server log for _mergeAuthzCollections errors, then restore again with --include-users',
        });
      }
    }
  } catch (e) {
    throw mongoError(e, 'restoring users and roles');
  } finally {
    for (const t of Object.values(TEMP))
      await admin
        .collection(t)
        .drop()
        .catch(() => {});
  }
  return result;
}
