// The WebAssembly gear loop (src/core/gear.ts): the module matches its source, and it cuts exactly where
// FastCDC in plain JavaScript cuts (the loop every earlier repository was written with), whether the bytes
// are scanned in place or copied in, whatever the split of the stream. No server needed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { gearModuleSource, GEAR_MODULE } from '../../scripts/build-wasm.ts';
import { ByteChunker, gearTable, type ChunkerParams } from '../../src/core/chunker.ts';
import { GearScanner, scanMemory } from '../../src/core/gear.ts';
import { pseudoRandom } from '../env/data.ts';

const gear = gearTable(Buffer.alloc(32, 3));

test('gear-wasm.ts is what scripts/build-wasm.ts makes of gear.wat', async () => {
  assert.equal(
    readFileSync(GEAR_MODULE, 'utf8'),
    await gearModuleSource(),
    'run `node scripts/build-wasm.ts` after editing src/core/gear.wat',
  );
});

/** The gear loop in JavaScript, byte by byte: the definition the WebAssembly must match. */
function referenceScan(data: Uint8Array, from: number, to: number, h: number, mask: number) {
  for (let i = from; i < to; i++) {
    h = ((h << 1) + gear[data[i]]) | 0;
    if ((h & mask) === 0) return { cut: i + 1, hash: h };
  }
  return { cut: -1, hash: h };
}

function highMask(bits: number): number {
  return ((2 ** bits - 1) * 2 ** (32 - bits)) | 0;
}

/** FastCDC with normalized chunking, level 1, over the whole stream at once, as chunker.ts defines it. */
function referenceCuts(data: Uint8Array, p: ChunkerParams): number[] {
  const bits = Math.round(Math.log2(p.avg));
  const maskS = highMask(bits + 1);
  const maskL = highMask(bits - 1);
  const lengths: number[] = [];
  let start = 0;
  while (start < data.length) {
    const left = data.length - start;
    if (left <= p.min) {
      lengths.push(left);
      break;
    }
    let end: number;
    let h = 0;
    const normal = referenceScan(data, start + p.min, start + Math.min(p.avg, left), h, maskS);
    if (normal.cut >= 0) end = normal.cut;
    else {
      h = normal.hash;
      const large = referenceScan(
        data,
        start + Math.min(p.avg, left),
        start + Math.min(p.max, left),
        h,
        maskL,
      );
      end = large.cut >= 0 ? large.cut : start + Math.min(p.max, left);
    }
    lengths.push(end - start);
    start = end;
  }
  return lengths;
}

/** Random bytes with runs of one byte and of text in them: the runs make the large-mask path and max cuts likely. */
const streams = fc
  .array(
    fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc
        .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 5000 }))
        .map(([b, n]) => new Uint8Array(n).fill(b)),
      fc
        .integer({ min: 1, max: 4000 })
        .map((n) => Buffer.from('chat history '.repeat(Math.ceil(n / 13)).slice(0, n))),
    ),
    { maxLength: 12 },
  )
  .map((parts) => Buffer.concat(parts));

const smallParams = fc
  .tuple(fc.integer({ min: 1, max: 512 }), fc.integer({ min: 6, max: 11 }), fc.integer({ min: 1, max: 6 }))
  .map(([min, bits, times]): ChunkerParams => {
    const avg = 2 ** bits;
    return { min: Math.min(min, avg - 1), avg, max: avg * times + 1 };
  });

function chunkLengths(chunker: ByteChunker, pieces: Uint8Array[]): number[] {
  const lengths: number[] = [];
  for (const piece of pieces)
    for (const parts of chunker.pushParts(piece)) lengths.push(parts.reduce((n, b) => n + b.length, 0));
  const last = chunker.flushParts();
  if (last) lengths.push(last.reduce((n, b) => n + b.length, 0));
  return lengths;
}

function splitAt(data: Uint8Array, points: number[]): Uint8Array[] {
  const cuts = [...new Set(points.map((p) => p % (data.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts, data.length]) {
    pieces.push(data.subarray(at, c));
    at = c;
  }
  return pieces;
}

test('byte chunker: cuts where the JavaScript FastCDC cuts, however the stream is split (copied in)', () => {
  fc.assert(
    fc.property(streams, smallParams, fc.array(fc.nat(), { maxLength: 6 }), (data, params, points) => {
      const expected = referenceCuts(data, params);
      assert.deepEqual(chunkLengths(new ByteChunker(gear, params), splitAt(data, points)), expected);
    }),
    { numRuns: 300 },
  );
});

test('byte chunker: cuts where the JavaScript FastCDC cuts when the bytes lie in the scanner memory', () => {
  const size = 64 * 1024;
  const memory = scanMemory(size);
  const scanner = new GearScanner(gear, memory, size);
  const inPlace = new Uint8Array(scanner.buffer, 0, size);
  fc.assert(
    fc.property(
      streams.filter((d) => d.length < size - 64),
      smallParams,
      fc.nat({ max: 63 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (data, params, offset, points) => {
        inPlace.set(data, offset);
        const view = inPlace.subarray(offset, offset + data.length);
        assert.deepEqual(
          chunkLengths(new ByteChunker(scanner, params), splitAt(view, points)),
          referenceCuts(data, params),
        );
      },
    ),
    { numRuns: 300 },
  );
});

test('gear scanner: the cut and the running hash match the JavaScript loop, in place and copied, across copy windows', () => {
  const size = 1024 * 1024;
  const memory = scanMemory(size);
  const inPlace = new GearScanner(gear, memory, size);
  const copied = new GearScanner(gear);
  const data = pseudoRandom('gear-scan', size);
  new Uint8Array(inPlace.buffer, 0, size).set(data);
  const view = new Uint8Array(inPlace.buffer, 0, size);
  fc.assert(
    fc.property(
      fc.nat({ max: size }),
      fc.nat({ max: size }),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      // From a mask that never stops the scan short of a 0 hash to one that stops it every few bytes.
      fc.integer({ min: 0, max: 32 }).map((bits) => (bits === 0 ? -1 : highMask(bits))),
      (a, b, hash, mask) => {
        const [from, to] = a <= b ? [a, b] : [b, a];
        const expected = referenceScan(data, from, to, hash, mask);
        for (const [name, scanner, bytes] of [
          ['in place', inPlace, view],
          ['copied', copied, data],
        ] as const) {
          const cut = scanner.scan(bytes, from, to, hash, mask);
          assert.equal(cut, expected.cut, `${name}: cut`);
          assert.equal(scanner.hash, expected.hash, `${name}: running hash`);
        }
      },
    ),
    { numRuns: 200 },
  );
  // A mask of every bit stops only at a hash of 0: this scan runs the whole megabyte, four copy windows.
  const whole = referenceScan(data, 0, size, 0, -1);
  assert.equal(copied.scan(data, 0, size, 0, -1), whole.cut);
  assert.equal(copied.hash, whole.hash);
});

test('gear scanner: a memory too small for its table and window is refused', () => {
  assert.throws(() => new GearScanner(gear, scanMemory(0), 64 * 1024 * 1024), RangeError);
});
