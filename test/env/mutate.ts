/**
 * fast-check arbitraries that damage valid inputs the way storage, transfers and bugs do: flipped bytes,
 * truncation, appended or inserted garbage, overwritten length fields; for JSON, deleted fields, values of
 * the wrong type and numbers no writer produces. Shared by the parser property tests
 * (test/core/parsers.property.test.ts, test/mongodb/parsers.property.test.ts).
 *
 * Positions are drawn as plain naturals and reduced modulo the input's length when applied, so one
 * arbitrary fits inputs of every size and shrinks towards the first byte.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LifeboatError, type ErrorCode } from '../../src/core/errors.ts';

/**
 * Runs per property: enough to hit every field of a small input, few enough for 2 cores in seconds.
 * LIFEBOAT_PROPERTY_RUNS=20000 searches longer (locally, after changing a parser).
 */
export const RUNS = Number(process.env.LIFEBOAT_PROPERTY_RUNS) || 300;
/** node:test timeout per property: a parser that loops forever fails the test instead of hanging it. */
export const PROPERTY_TIMEOUT = { timeout: Math.max(60_000, RUNS * 200) };

export type ByteMutation =
  | { op: 'flip'; at: number; xor: number }
  | { op: 'truncate'; at: number }
  | { op: 'extend'; bytes: Uint8Array }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  /** Overwrites 4 bytes with a little-endian uint32: hits length prefixes and counters. */
  | { op: 'u32'; at: number; value: number }
  /** Overwrites the last 4 bytes (a pack's header length). */
  | { op: 'tail-u32'; value: number };

/** Lengths a damaged length field tends to hold: 0, tiny, off by one, huge, all ones. */
const interestingU32 = fc.oneof(
  fc.constantFrom(
    0,
    1,
    4,
    5,
    27,
    28,
    29,
    0x7fffffff,
    0x80000000,
    0xfffffffe,
    0xffffffff,
    16 * 1024 * 1024 + 1,
  ),
  fc.nat({ max: 0xffffffff }),
);

export const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('flip'), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  },
  fc.record({ op: fc.constant('truncate'), at: fc.nat() }),
  fc.record({ op: fc.constant('extend'), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({
    op: fc.constant('insert'),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({ op: fc.constant('delete'), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
  { weight: 2, arbitrary: fc.record({ op: fc.constant('u32'), at: fc.nat(), value: interestingU32 }) },
  fc.record({ op: fc.constant('tail-u32'), value: interestingU32 }),
) as fc.Arbitrary<ByteMutation>;

/** One to three mutations, applied in order. */
export const byteMutations = fc.array(byteMutation, { minLength: 1, maxLength: 3 });

export function applyByteMutation(input: Uint8Array, m: ByteMutation): Buffer {
  const b = Buffer.from(input);
  const at = (n: number) => (b.length === 0 ? 0 : n % b.length);
  switch (m.op) {
    case 'flip':
      if (b.length) b[at(m.at)] ^= m.xor;
      return b;
    case 'truncate':
      return b.subarray(0, at(m.at));
    case 'extend':
      return Buffer.concat([b, m.bytes]);
    case 'insert':
      return Buffer.concat([b.subarray(0, at(m.at)), m.bytes, b.subarray(at(m.at))]);
    case 'delete':
      return Buffer.concat([b.subarray(0, at(m.at)), b.subarray(at(m.at) + m.count)]);
    case 'u32': {
      if (b.length < 4) return b;
      b.writeUInt32LE(m.value, m.at % (b.length - 3));
      return b;
    }
    case 'tail-u32':
      if (b.length >= 4) b.writeUInt32LE(m.value, b.length - 4);
      return b;
  }
}

export function applyByteMutations(input: Uint8Array, ms: ByteMutation[]): Buffer {
  let b: Buffer = Buffer.from(input);
  for (const m of ms) b = applyByteMutation(b, m);
  return b;
}

// ---- JSON ----------------------------------------------------------------------------------------------

/** Values of the wrong type or range for any field a parser reads. */
export const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    -0,
    2 ** 53,
    Number.MAX_SAFE_INTEGER + 2,
    1e308,
    -1e308,
    '',
    'x',
    '0'.repeat(64),
    'g'.repeat(64),
    'A'.repeat(64),
    '2024-13-45T99:99:99Z',
    [],
    {},
    [[]],
    [null],
  ),
  fc.integer(),
  fc.string({ maxLength: 8 }),
  fc.jsonValue({ maxDepth: 2 }),
);

export type JsonMutation =
  | { op: 'delete'; path: number }
  | { op: 'replace'; path: number; value: unknown }
  /** A number no JSON.stringify writes: becomes Infinity, loses precision, or is negative zero. */
  | { op: 'number-text'; which: number; text: string };

export const jsonMutation: fc.Arbitrary<JsonMutation> = fc.oneof(
  fc.record({ op: fc.constant('delete'), path: fc.nat() }),
  { weight: 3, arbitrary: fc.record({ op: fc.constant('replace'), path: fc.nat(), value: wrongValue }) },
  fc.record({
    op: fc.constant('number-text'),
    which: fc.nat(),
    text: fc.constantFrom(
      '1e400',
      '-1e400',
      '123456789012345678901234567890',
      '-0',
      '1.0000000000000002',
      '4.2e1',
    ),
  }),
) as fc.Arbitrary<JsonMutation>;

type Path = (string | number)[];

function pathsOf(v: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (v && typeof v === 'object') {
    for (const [k, child] of Object.entries(v))
      pathsOf(child, [...prefix, Array.isArray(v) ? Number(k) : k], out);
  }
  return out;
}

/** Applies JSON mutations to a deep copy of `value` and returns the resulting JSON text. */
export function mutateJson(value: unknown, ms: JsonMutation[]): string {
  let root: unknown = structuredClone(value);
  let text: string | undefined;
  for (const m of ms) {
    if (m.op === 'number-text') {
      text ??= JSON.stringify(root ?? {});
      const numbers = [...text.matchAll(/(?<=[:,[])-?\d+(\.\d+)?([eE][+-]?\d+)?(?=[,\]}])/g)];
      if (numbers.length === 0) continue;
      const n = numbers[m.which % numbers.length];
      text = text.slice(0, n.index) + m.text + text.slice(n.index! + n[0].length);
      root = JSON.parse(text);
      continue;
    }
    text = undefined;
    const paths = pathsOf(root);
    const p = paths[m.path % paths.length];
    if (p.length === 0) {
      root = m.op === 'delete' ? undefined : m.value;
      continue;
    }
    const parent = p.slice(0, -1).reduce((o: any, k) => o[k], root); // eslint-disable-line @typescript-eslint/no-explicit-any
    const key = p.at(-1)!;
    if (m.op === 'delete') {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
    } else parent[key] = m.value;
  }
  // `undefined` at the root (everything deleted) is stored as an empty object.
  return text ?? JSON.stringify(root ?? {});
}

export const jsonMutations = fc.array(jsonMutation, { minLength: 1, maxLength: 3 });

// ---- outcomes ------------------------------------------------------------------------------------------

/**
 * Asserts that `e` is a LifeboatError with the expected code (INTEGRITY unless told otherwise) and, when
 * given, that its message names `what`, so an operator can tell which object is damaged.
 */
export function assertTypedError(
  e: unknown,
  what?: string,
  codes: ErrorCode[] = ['INTEGRITY'],
): LifeboatError {
  if (!(e instanceof LifeboatError)) {
    assert.fail(`expected a LifeboatError, got ${(e as Error)?.stack ?? String(e)}`);
  }
  assert.ok(codes.includes(e.code), `expected ${codes.join('/')}, got ${e.code}: ${e.message}`);
  if (what !== undefined) assert.ok(e.message.includes(what), `message does not name ${what}: ${e.message}`);
  return e;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: LifeboatError };

/** Runs a parser: its value, or the typed error it threw (anything else fails the property). */
export function outcome<T>(fn: () => T, what?: string, codes?: ErrorCode[]): Outcome<T> {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    return { ok: false, error: assertTypedError(e, what, codes) };
  }
}

export async function outcomeAsync<T>(
  fn: () => Promise<T>,
  what?: string,
  codes?: ErrorCode[],
): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, error: assertTypedError(e, what, codes) };
  }
}
