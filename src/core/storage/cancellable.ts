/**
 * Binds one operation's AbortSignal to every call made through a Backend, so that a repository opened for
 * a command hands the command's cancellation (SIGINT/SIGTERM, a lost lock) to each save, load and list
 * without every call site passing it. A call that fails after the signal fired reports INTERRUPTED, not
 * whatever the SDK said about its aborted socket.
 */
import { interrupted, throwIfAborted, type Backend } from './backend.ts';
import { BackendWrapper, type Attempt, type Call, type Listing } from './wrappers/wrapper.ts';

export class CancellableBackend extends BackendWrapper {
  private readonly signal: AbortSignal;

  constructor(inner: Backend, signal: AbortSignal) {
    super(inner);
    this.signal = signal;
  }

  private merged(call: Call): AbortSignal {
    return call.signal ? AbortSignal.any([this.signal, call.signal]) : this.signal;
  }

  protected async call<T>(call: Call, attempt: Attempt<T>): Promise<T> {
    const signal = this.merged(call);
    throwIfAborted(signal, call.what);
    try {
      return await attempt(signal);
    } catch (e) {
      if (signal.aborted) throw interrupted(signal, call.what);
      throw e;
    }
  }

  protected async *listing<T>(call: Call, _key: (entry: T) => string, open: Listing<T>): AsyncIterable<T> {
    const signal = this.merged(call);
    throwIfAborted(signal, call.what);
    try {
      for await (const entry of open(signal)) {
        throwIfAborted(signal, call.what);
        yield entry;
      }
    } catch (e) {
      if (signal.aborted) throw interrupted(signal, call.what);
      throw e;
    }
  }
}
