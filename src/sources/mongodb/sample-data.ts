/**
 * A Rocket.Chat-shaped data set for tests, the `npm start` demo and the benchmark: users, rooms,
 * subscriptions, messages (nested objects and arrays, mentions, markdown trees, reactions, threads),
 * uploads with GridFS-style binary chunks, settings, and a migrations collection holding the rarer BSON
 * types (regex, timestamp, int64, double, null). `_id`s are 17-character random strings, as Rocket.Chat's
 * Random.id() makes them, except GridFS chunks (ObjectIds). Deterministic for a given seed.
 *
 * `simulateDay2` applies a day of Rocket.Chat activity: 1% new messages, edits and reactions on recent
 * messages, lastLogin on many users, and every room's lastMessage/lm/msgs — the scattered small updates
 * that make a daily full dump mostly, but not entirely, like yesterday's.
 */
import {
  Binary,
  Double,
  Int32,
  Long,
  ObjectId,
  BSONRegExp,
  Timestamp,
  type Document,
  type MongoClient,
} from 'mongodb';

const ALPHABET = '23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz';
const WORDS =
  'the a to and of in is it you that for on with this be are have not at we can do your just but so if all about what from there will out up one get like when they meeting deploy review release ticket chat rocket please thanks merge bug fix tomorrow today call team update docs lunch coffee ok sure great cluster backup restore pod node'.split(
    ' ',
  );

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    // mulberry32
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: T[]): T {
    return a[this.int(a.length)];
  }
  id(): string {
    let s = '';
    for (let i = 0; i < 17; i++) s += ALPHABET[this.int(ALPHABET.length)];
    return s;
  }
  words(n: number): string {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.pick(WORDS));
    return out.join(' ');
  }
}

export interface SampleSpec {
  db: string;
  users: number;
  rooms: number;
  messages: number;
  uploads: number;
  seed: number;
}

/** BSON per generated message, all collections included (measured 562 B: 200.6 MB for 356 700 messages); a little less, so a requested size is a lower bound. */
export const APPROX_MESSAGE_BYTES = 530;

/** A spec whose data set is roughly `bytes` large (messages dominate, as in Rocket.Chat). */
export function specForBytes(bytes: number, db = 'rocketchat', seed = 42): SampleSpec {
  const messages = Math.max(100, Math.round(bytes / APPROX_MESSAGE_BYTES));
  return {
    db,
    messages,
    users: Math.max(20, Math.round(messages / 200)),
    rooms: Math.max(5, Math.round(messages / 2000)),
    uploads: Math.max(2, Math.round(messages / 5000)),
    seed,
  };
}

const DAY = 86_400_000;
const BASE_TIME = Date.UTC(2024, 0, 1);

interface Ctx {
  rng: Rng;
  users: { _id: string; username: string; name: string }[];
  rooms: { _id: string; name: string; t: string }[];
}

function user(rng: Rng, i: number): Document {
  const username = `user.${i}`;
  const created = new Date(BASE_TIME - rng.int(365) * DAY);
  return {
    _id: rng.id(),
    createdAt: created,
    services: {
      password: { bcrypt: `$2b$10$${rng.id()}${rng.id()}${rng.id()}`.slice(0, 60) },
      email2fa: { enabled: rng.next() < 0.2, changedAt: created },
      resume: {
        loginTokens: [{ when: created, hashedToken: Buffer.from(rng.id() + rng.id()).toString('base64') }],
      },
    },
    username,
    emails: [{ address: `${username}@example.org`, verified: rng.next() < 0.9 }],
    type: 'user',
    status: rng.pick(['online', 'offline', 'away', 'busy']),
    active: true,
    _updatedAt: created,
    roles: i === 0 ? ['admin', 'user'] : ['user'],
    name: `User ${i} ${rng.words(1)}`,
    lastLogin: new Date(BASE_TIME - rng.int(30) * DAY),
    statusConnection: 'offline',
    utcOffset: new Double(rng.pick([0, 1, 2, -5, 5.5, -3.5])),
    language: rng.pick(['en', 'de', 'fr', 'pt-BR']),
    statusText: rng.next() < 0.3 ? rng.words(3) : null,
    settings: {
      preferences: {
        enableAutoAway: true,
        idleTimeLimit: new Int32(300),
        emailNotificationMode: 'mentions',
        sidebarSortby: 'activity',
      },
    },
  };
}

function room(rng: Rng, i: number, owner: Ctx['users'][number]): Document {
  const t = i % 10 === 0 ? 'p' : i % 7 === 0 ? 'd' : 'c';
  return {
    _id: i === 0 ? 'GENERAL' : rng.id(),
    t,
    name: i === 0 ? 'general' : `room-${i}`,
    fname: i === 0 ? 'general' : `Room ${i}`,
    msgs: new Int32(0),
    usersCount: new Int32(0),
    u: { _id: owner._id, username: owner.username },
    ts: new Date(BASE_TIME - rng.int(300) * DAY),
    ro: false,
    sysMes: true,
    default: i === 0,
    _updatedAt: new Date(BASE_TIME),
    description: rng.next() < 0.5 ? rng.words(8) : null,
    topic: rng.next() < 0.3 ? rng.words(4) : undefined,
  };
}

function message(c: Ctx, i: number, ts: Date): Document {
  const { rng } = c;
  const u = rng.pick(c.users);
  const r = rng.pick(c.rooms);
  const text = rng.words(5 + rng.int(40));
  const doc: Document = {
    _id: rng.id(),
    rid: r._id,
    msg: text,
    ts,
    u: { _id: u._id, username: u.username, name: u.name },
    _updatedAt: ts,
    mentions:
      rng.next() < 0.1
        ? [{ _id: rng.pick(c.users)._id, username: rng.pick(c.users).username, type: 'user' }]
        : [],
    channels: [],
    md: [{ type: 'PARAGRAPH', value: [{ type: 'PLAIN_TEXT', value: text }] }],
  };
  if (rng.next() < 0.05)
    doc.urls = [{ url: `https://example.org/${rng.id()}`, meta: { pageTitle: rng.words(3) } }];
  if (rng.next() < 0.03) {
    doc.tmid = rng.id();
    doc.tshow = false;
  }
  if (rng.next() < 0.02) doc.groupable = false;
  if (i % 997 === 0) doc.t = 'uj';
  return doc;
}

async function insertAll(
  client: MongoClient,
  db: string,
  coll: string,
  docs: Iterable<Document>,
  batch = 1000,
): Promise<number> {
  const c = client.db(db).collection(coll);
  let buf: Document[] = [];
  let n = 0;
  for (const d of docs) {
    buf.push(d);
    if (buf.length >= batch) {
      await c.insertMany(buf, { ordered: false });
      n += buf.length;
      buf = [];
    }
  }
  if (buf.length) {
    await c.insertMany(buf, { ordered: false });
    n += buf.length;
  }
  return n;
}

export interface SampleResult {
  db: string;
  counts: Record<string, number>;
}

/** Creates the data set in `spec.db` (which should be empty). */
export async function generateSample(
  client: MongoClient,
  spec: SampleSpec,
  onProgress?: (coll: string, n: number) => void,
): Promise<SampleResult> {
  const rng = new Rng(spec.seed);
  const ctx: Ctx = { rng, users: [], rooms: [] };
  const counts: Record<string, number> = {};
  const db = client.db(spec.db);

  const users = Array.from({ length: spec.users }, (_, i) => user(rng, i));
  ctx.users = users.map((u) => ({ _id: u._id, username: u.username, name: u.name }));
  counts.users = await insertAll(client, spec.db, 'users', users);
  await db.collection('users').createIndex({ username: 1 }, { unique: true, name: 'username_1' });
  await db.collection('users').createIndex({ 'emails.address': 1 }, { name: 'emails.address_1' });
  await db.collection('users').createIndex({ status: 1, active: 1 }, { name: 'status_1_active_1' });

  const rooms = Array.from({ length: spec.rooms }, (_, i) => room(rng, i, rng.pick(ctx.users)));
  ctx.rooms = rooms.map((r) => ({ _id: r._id, name: r.name, t: r.t }));
  counts.rocketchat_room = await insertAll(client, spec.db, 'rocketchat_room', rooms);
  await db.collection('rocketchat_room').createIndex({ name: 1 }, { name: 'name_1' });
  await db.collection('rocketchat_room').createIndex({ t: 1, _updatedAt: 1 }, { name: 't_1__updatedAt_1' });

  function* subs() {
    for (const r of ctx.rooms) {
      const members = Math.min(ctx.users.length, 3 + rng.int(20));
      const first = rng.int(ctx.users.length);
      for (let k = 0; k < members; k++) {
        const u = ctx.users[(first + k) % ctx.users.length];
        yield {
          _id: rng.id(),
          rid: r._id,
          u: { _id: u._id, username: u.username },
          name: r.name,
          t: r.t,
          ts: new Date(BASE_TIME),
          ls: new Date(BASE_TIME),
          unread: new Int32(rng.int(5)),
          alert: rng.next() < 0.1,
          open: true,
          roles: k === 0 ? ['owner'] : [],
        };
      }
    }
  }
  counts.rocketchat_subscription = await insertAll(client, spec.db, 'rocketchat_subscription', subs());
  await db
    .collection('rocketchat_subscription')
    .createIndex({ rid: 1, 'u._id': 1 }, { unique: true, name: 'rid_1_u._id_1' });

  function* msgs() {
    for (let i = 0; i < spec.messages; i++) {
      const ts = new Date(BASE_TIME + Math.floor((i / spec.messages) * 30 * DAY));
      yield message(ctx, i, ts);
      if (i % 50_000 === 0) onProgress?.('rocketchat_message', i);
    }
  }
  counts.rocketchat_message = await insertAll(client, spec.db, 'rocketchat_message', msgs());
  await db.collection('rocketchat_message').createIndex({ rid: 1, ts: 1 }, { name: 'rid_1_ts_1' });
  await db.collection('rocketchat_message').createIndex({ ts: 1 }, { name: 'ts_1' });
  await db.collection('rocketchat_message').createIndex({ 'u._id': 1 }, { name: 'u._id_1' });

  const uploads: Document[] = [];
  const chunks: Document[] = [];
  for (let i = 0; i < spec.uploads; i++) {
    const id = rng.id();
    const size = 1024 + rng.int(8192);
    uploads.push({
      _id: id,
      name: `screenshot-${i}.png`,
      size: Long.fromNumber(size),
      type: 'image/png',
      rid: rng.pick(ctx.rooms)._id,
      userId: rng.pick(ctx.users)._id,
      store: 'GridFS:Uploads',
      complete: true,
      uploading: false,
      extension: 'png',
      progress: new Double(1),
      etag: rng.id(),
      path: `/ufs/GridFS:Uploads/${id}/screenshot-${i}.png`,
      url: `/ufs/GridFS:Uploads/${id}/screenshot-${i}.png`,
      uploadedAt: new Date(BASE_TIME + rng.int(30) * DAY),
      identify: { format: 'png', size: { width: new Int32(800), height: new Int32(600) } },
    });
    const data = Buffer.alloc(size);
    for (let b = 0; b < size; b++) data[b] = rng.int(256);
    chunks.push({ _id: new ObjectId(), files_id: id, n: new Int32(0), data: new Binary(data) });
  }
  counts.rocketchat_uploads = await insertAll(client, spec.db, 'rocketchat_uploads', uploads);
  counts['rocketchat_uploads.chunks'] = await insertAll(client, spec.db, 'rocketchat_uploads.chunks', chunks);
  await db
    .collection('rocketchat_uploads.chunks')
    .createIndex({ files_id: 1, n: 1 }, { unique: true, name: 'files_id_1_n_1' });

  const settings: Document[] = [
    {
      _id: 'Site_Url',
      value: 'https://chat.example.org',
      type: 'string',
      public: true,
      blocked: false,
      hidden: false,
      group: 'General',
      ts: new Date(BASE_TIME),
    },
    {
      _id: 'Accounts_RegistrationForm',
      value: 'Public',
      type: 'select',
      public: true,
      group: 'Accounts',
      ts: new Date(BASE_TIME),
    },
    {
      _id: 'FileUpload_MaxFileSize',
      value: new Int32(104857600),
      type: 'int',
      public: true,
      group: 'FileUpload',
      ts: new Date(BASE_TIME),
    },
    {
      _id: 'Message_AllowEditing',
      value: true,
      type: 'boolean',
      public: true,
      group: 'Message',
      ts: new Date(BASE_TIME),
    },
    {
      _id: 'Accounts_AllowedDomainsList',
      value: '',
      type: 'string',
      public: false,
      packageValue: null,
      group: 'Accounts',
      ts: new Date(BASE_TIME),
    },
  ];
  counts.rocketchat_settings = await insertAll(client, spec.db, 'rocketchat_settings', settings);

  // The rarer types in one place: regex, timestamp, int64, double, binary, null, nested documents.
  counts.migrations = await insertAll(client, spec.db, 'migrations', [
    {
      _id: 'control',
      version: new Int32(306),
      locked: false,
      buildAt: new Timestamp({ t: Math.floor(BASE_TIME / 1000), i: 1 }),
      lockedAt: new Date(BASE_TIME),
      hash: new Binary(Buffer.from('0123456789abcdef', 'hex'), 0),
      uuid: new Binary(Buffer.from('00112233445566778899aabbccddeeff', 'hex'), 4),
      pattern: new BSONRegExp('^rocket\\.chat$', 'i'),
      big: Long.fromString('9007199254740993'),
      ratio: new Double(0.1),
      nothing: null,
    },
  ]);
  // An empty collection, as Rocket.Chat has many.
  await db.createCollection('rocketchat_livechat_inquiry');
  counts.rocketchat_livechat_inquiry = 0;
  return { db: spec.db, counts };
}

export interface Day2Summary {
  newMessages: number;
  edited: number;
  reacted: number;
  lastLogin: number;
  rooms: number;
}

/**
 * Rewrites a collection in natural order through `transform`, appending `extra` at the end, then swaps
 * it in place of the original (indexes copied). The result is exactly what in-place updates and inserts
 * would leave (in-place updates keep a document's position; inserts land at the end), but it costs one
 * sequential pass: FerretDB/SQLite executes every update filter as a full table scan (about 0.3 s per
 * updateOne on 50 000 messages, minutes for an updateMany with a 500-id $in), which would make a day of
 * updates on a 1 GiB data set take days.
 */
async function rewriteCollection(
  client: MongoClient,
  db: string,
  coll: string,
  transform: (doc: Document, i: number) => Document,
  extra: Iterable<Document> = [],
): Promise<number> {
  const d = client.db(db);
  const tmp = `${coll}__lifeboat_day2`;
  await d
    .collection(tmp)
    .drop()
    .catch(() => {});
  const indexes = await d.collection(coll).listIndexes().toArray();
  const out = d.collection(tmp);
  let batch: Document[] = [];
  let i = 0;
  const flush = async () => {
    if (batch.length) await out.insertMany(batch, { ordered: true });
    batch = [];
  };
  const cursor = d
    .collection(coll)
    .find({}, { promoteValues: false, promoteLongs: false, bsonRegExp: true, batchSize: 1000 });
  for await (const doc of cursor) {
    batch.push(transform(doc, i++));
    if (batch.length >= 1000) await flush();
  }
  for (const doc of extra) {
    batch.push(doc);
    if (batch.length >= 1000) await flush();
  }
  await flush();
  for (const ix of indexes) {
    if (ix.name === '_id_') continue;
    const { key, name, v: _v, ns: _ns, ...rest } = ix;
    void _v;
    void _ns;
    await out.createIndex(key, { name, ...rest });
  }
  await d.collection(coll).drop();
  await out.rename(coll);
  return i;
}

/**
 * One day of Rocket.Chat activity on a data set made by generateSample: 1% new messages; edits (30%)
 * and reactions (35%) on the most recent 2% of messages; lastLogin and statusConnection on 60% of users;
 * every room's lastMessage, lm, msgs and _updatedAt.
 */
export async function simulateDay2(
  client: MongoClient,
  db: string,
  seed = 4242,
  fraction = 0.01,
): Promise<Day2Summary> {
  const rng = new Rng(seed);
  const d = client.db(db);
  const users = (await d
    .collection('users')
    .find({}, { projection: { _id: 1, username: 1, name: 1 } })
    .toArray()) as unknown as Ctx['users'];
  const rooms = (await d
    .collection('rocketchat_room')
    .find({}, { projection: { _id: 1, name: 1, t: 1 } })
    .toArray()) as unknown as Ctx['rooms'];
  const ctx: Ctx = { rng, users, rooms };
  const total = await d.collection('rocketchat_message').countDocuments({});
  const day2 = BASE_TIME + 31 * DAY;
  // Messages are stored in time order, so the last positions are the most recent messages.
  const recentFrom = total - Math.max(2, Math.round(total * fraction * 2));
  const newCount = Math.max(1, Math.round(total * fraction));
  const fresh: Document[] = [];
  const last = new Map<string, Document>();
  for (let i = 0; i < newCount; i++) {
    const m = message(ctx, total + i, new Date(day2 + Math.floor((i / newCount) * DAY)));
    last.set(m.rid, m);
    fresh.push(m);
  }
  let edited = 0;
  let reacted = 0;
  await rewriteCollection(
    client,
    db,
    'rocketchat_message',
    (m, i) => {
      if (i < recentFrom) return m;
      const u = rng.pick(users);
      const r = rng.next();
      if (r < 0.3) {
        edited++;
        const text = rng.words(8);
        return {
          ...m,
          msg: text,
          md: [{ type: 'PARAGRAPH', value: [{ type: 'PLAIN_TEXT', value: text }] }],
          editedAt: new Date(day2),
          editedBy: { _id: u._id, username: u.username },
          _updatedAt: new Date(day2),
        };
      }
      if (r < 0.65) {
        reacted++;
        return {
          ...m,
          reactions: { [rng.pick([':+1:', ':tada:', ':eyes:'])]: { usernames: [u.username] } },
          _updatedAt: new Date(day2),
        };
      }
      return m;
    },
    fresh,
  );

  let lastLogin = 0;
  await rewriteCollection(client, db, 'users', (u) => {
    if (rng.next() >= 0.6) return u;
    lastLogin++;
    return { ...u, lastLogin: new Date(day2 + rng.int(DAY)), statusConnection: 'online' };
  });

  await rewriteCollection(client, db, 'rocketchat_room', (r) => {
    const m = last.get(r._id as string);
    const out: Document = {
      ...r,
      lm: new Date(day2),
      _updatedAt: new Date(day2),
      msgs: new Int32(Number(r.msgs?.valueOf?.() ?? 0) + (m ? 1 : 0)),
    };
    if (m)
      out.lastMessage = {
        _id: m._id,
        rid: m.rid,
        msg: m.msg,
        ts: m.ts,
        u: m.u,
        _updatedAt: m._updatedAt,
        mentions: m.mentions,
        channels: [],
        md: m.md,
      };
    return out;
  });

  return { newMessages: newCount, edited, reacted, lastLogin, rooms: rooms.length };
}
