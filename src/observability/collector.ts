/**
 * Reads the repository into a MetricsReport, at most once per `maxAgeMs`: `lifeboat serve` answers a
 * scrape every 15 s from the cached report, and concurrent requests share one refresh. The repository
 * is opened without a lock (everything read here is write-once) and kept open between refreshes; a
 * refresh that fails closes it, reports `up 0` with the error code, and the next refresh opens it again.
 */
import { isLifeboatError } from '../core/errors.ts';
import type { Repository } from '../core/repository/repository.ts';
import { collectReport, unreachableReport, type MetricsReport } from './metrics.ts';

export interface CollectorOptions {
  open(): Promise<Repository>;
  location: string;
  quotaBytes?: number;
  maxAgeMs: number;
  now?: () => number;
}

/** Errors that are the operator's to fix in the command line, not a repository that is down. */
const NOT_DOWN = new Set(['USAGE', 'CONFIG', 'INTERRUPTED']);

export class MetricsCollector {
  private readonly options: CollectorOptions;
  private repo?: Repository;
  private cached?: { at: number; report: MetricsReport };
  private inFlight?: Promise<MetricsReport>;
  private readonly records = new Map<string, unknown>();

  constructor(options: CollectorOptions) {
    this.options = options;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** The repository id of the last successful read (undefined before one). */
  get repositoryId(): string | undefined {
    return this.repo?.id;
  }

  async report(): Promise<MetricsReport> {
    if (this.cached && this.now() - this.cached.at < this.options.maxAgeMs) return this.cached.report;
    this.inFlight ??= this.refresh().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async refresh(): Promise<MetricsReport> {
    let report: MetricsReport;
    try {
      this.repo ??= await this.options.open();
      report = await collectReport(this.repo, {
        now: this.now(),
        quotaBytes: this.options.quotaBytes,
        location: this.options.location,
        recordCache: this.records,
      });
    } catch (e) {
      if (isLifeboatError(e) && NOT_DOWN.has(e.code)) throw e;
      await this.close();
      report = unreachableReport(e, this.options.location, this.now());
    }
    this.cached = { at: this.now(), report };
    return report;
  }

  async close(): Promise<void> {
    const repo = this.repo;
    this.repo = undefined;
    await repo?.close().catch(() => {});
  }
}
