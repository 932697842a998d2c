// Apart from oplog.ts so the CLI can print positions without loading the MongoDB sources
// (lazy-imports.test.ts).

/** An oplog timestamp as JSON: seconds and ordinal. */
export interface OplogPosition {
  t: number;
  i: number;
}

export const formatPosition = (p: OplogPosition): string => `${p.t}:${p.i}`;

export function comparePositions(a: OplogPosition, b: OplogPosition): number {
  return a.t !== b.t ? a.t - b.t : a.i - b.i;
}
