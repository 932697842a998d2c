// The part of the WebAssembly JavaScript API that gear.ts uses. TypeScript declares WebAssembly only in its
// DOM and web-worker libraries, and loading either would declare browser globals that Node does not have.
declare namespace WebAssembly {
  class Module {
    constructor(bytes: Uint8Array);
  }
  class Instance {
    constructor(module: Module, imports: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
  class Memory {
    constructor(descriptor: { initial: number; maximum?: number; shared?: boolean });
    /** A SharedArrayBuffer when the memory is shared. */
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
  }
  class Global {
    value: number;
  }
}
