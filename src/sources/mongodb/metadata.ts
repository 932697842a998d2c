/**
 * A collection's metadata as mongodump writes it (`<coll>.metadata.json`, and the `metadata` string in an
 * archive's prelude): canonical Extended JSON v2 with fields in the order `options` (omitted when empty),
 * `indexes` (always, `[]` when none), `uuid` (32 lowercase hex digits, omitted when unknown),
 * `collectionName`, `type` (omitted when empty). Older tools wrote relaxed JSON, with `"ns"` inside each
 * index spec and no `collectionName`; the parser takes both. Values are parsed with `relaxed: false`, so
 * an int32 stays an Int32 and a double stays a Double through a parse/format round trip.
 */
import { Binary, EJSON, type Document } from 'bson';
import { LifeboatError } from '../../core/errors.ts';

/** BSON options that keep every value's exact type when metadata is decoded (Int32 stays Int32). */
export const EXACT_BSON = {
  promoteValues: false,
  promoteLongs: false,
  promoteBuffers: false,
  bsonRegExp: true,
} as const;

export interface CollectionMetadata {
  options: Document;
  indexes: Document[];
  uuid?: string;
  collectionName: string;
  /** 'collection', 'view', 'timeseries'; undefined when the source did not say. */
  type?: string;
}

export function parseMetadataJson(
  text: string,
  fallbackName: string,
  what = 'metadata.json',
): CollectionMetadata {
  let raw: unknown;
  try {
    raw = EJSON.parse(text, { relaxed: false });
  } catch (e) {
    throw new LifeboatError('INTEGRITY', `${what}: not valid Extended JSON (${(e as Error).message})`, {
      hint: 'the metadata file is damaged; restore it from the original dump',
    });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new LifeboatError('INTEGRITY', `${what}: expected a JSON object`, {
      hint: 'the metadata file is damaged',
    });
  }
  const m = raw as Document;
  const options = m.options ?? {};
  const indexes = m.indexes ?? [];
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new LifeboatError('INTEGRITY', `${what}: "options" must be an object`, {
      hint: 'the metadata file is damaged',
    });
  }
  if (!Array.isArray(indexes) || indexes.some((i) => typeof i !== 'object' || i === null)) {
    throw new LifeboatError('INTEGRITY', `${what}: "indexes" must be an array of objects`, {
      hint: 'the metadata file is damaged',
    });
  }
  const out: CollectionMetadata = {
    options: options as Document,
    indexes: indexes as Document[],
    collectionName: typeof m.collectionName === 'string' ? m.collectionName : fallbackName,
  };
  if (typeof m.uuid === 'string' && m.uuid !== '') out.uuid = m.uuid;
  if (typeof m.type === 'string' && m.type !== '') out.type = m.type;
  return out;
}

export function formatMetadataJson(m: CollectionMetadata): string {
  const doc: Document = {};
  if (Object.keys(m.options).length > 0) doc.options = m.options;
  doc.indexes = m.indexes;
  if (m.uuid) doc.uuid = m.uuid;
  doc.collectionName = m.collectionName;
  if (m.type) doc.type = m.type;
  return EJSON.stringify(doc, { relaxed: false });
}

/** The UUID of a listCollections `info.uuid` (Binary subtype 4) as mongodump writes it. */
export function uuidHex(uuid: unknown): string | undefined {
  // By type tag: the driver's values come from bson's CommonJS build, `Binary` here from its ES build.
  if ((uuid as { _bsontype?: string } | null)?._bsontype === 'Binary')
    return Buffer.from((uuid as Binary).buffer).toString('hex');
  return undefined;
}

/**
 * An index spec as createIndexes takes it: without `ns` (servers since 4.4 reject it) and without `v`
 * when it names an index version the target may not build (the server picks its default).
 */
export function indexSpecForCreate(spec: Document): Document {
  const { ns: _ns, ...rest } = spec;
  void _ns;
  return rest;
}
