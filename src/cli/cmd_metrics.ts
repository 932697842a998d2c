/**
 * `lifeboat metrics`: the repository's health as Prometheus metrics (src/observability/metrics.ts), the
 * ways batch jobs deliver them: on stdout, as a node-exporter textfile, or pushed to a Pushgateway.
 */
import { chmod, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LifeboatError } from '../core/errors.ts';
import { Repository } from '../core/repository/repository.ts';
import { openBackend } from '../core/storage/open.ts';
import { formatText, formatValue, TEXT_CONTENT_TYPE, type MetricFamily } from '../observability/prom-text.ts';
import type { MetricsCollector } from '../observability/collector.ts';
import {
  str,
  usageError,
  type Command,
  type CommandContext,
  type OptionSpec,
  type OptionValues,
} from './command.ts';
import { EXIT_FAILED, EXIT_OK } from './exit.ts';
import { keystoreFor } from './repo.ts';

export const STORAGE_QUOTA_OPTION: OptionSpec = {
  type: 'string',
  arg: 'SIZE',
  description: 'storage quota for the repository (e.g. 500GiB): enables the quota metrics and alerts',
};

/** The quota from --storage-quota, else `metrics.storage-quota` in lifeboat.yaml (serve reads it too). */
export async function storageQuota(ctx: CommandContext, values: OptionValues): Promise<number | undefined> {
  const { parseSize } = await import('../observability/metrics.ts');
  const own = str(values['storage-quota']);
  const fromMetrics = ctx.section('metrics')['storage-quota'];
  const text = own ?? (fromMetrics !== undefined ? String(fromMetrics) : undefined);
  return text === undefined ? undefined : parseSize(text, 'metrics.storage-quota (--storage-quota)');
}

/**
 * A collector reading the repository of the global options (no lock, kept open across refreshes). The
 * metrics modules load only for `metrics` and `serve` (lazy-imports.test.ts).
 */
export async function collectorFor(
  ctx: CommandContext,
  values: OptionValues,
  maxAgeMs: number,
): Promise<MetricsCollector> {
  const { MetricsCollector } = await import('../observability/collector.ts');
  return new MetricsCollector({
    location: ctx.globals.repo,
    quotaBytes: await storageQuota(ctx, values),
    maxAgeMs,
    open: async () => {
      const backend = await openBackend(ctx.globals.repo, ctx.env);
      try {
        const keystore = await keystoreFor(ctx);
        return await Repository.open(backend, keystore, { signal: ctx.signal });
      } catch (e) {
        await backend.close().catch(() => {});
        throw e;
      }
    },
  });
}

/** Families as JSON: non-finite values (+Inf) as the text format spells them, since JSON has none. */
export function familiesJson(families: MetricFamily[]): unknown[] {
  return families
    .filter((f) => f.samples.length)
    .map((f) => ({
      ...f,
      samples: f.samples.map((s) => ({
        labels: s.labels,
        value: Number.isFinite(s.value) ? s.value : formatValue(s.value),
      })),
    }));
}

/**
 * Writes the file so that the collector never reads half of it: a temporary file in the same directory,
 * then rename (atomic on POSIX). Mode 0644 on purpose: node-exporter runs as another user and must read
 * it, and metrics hold no secret (labels carry the redacted location only).
 */
async function writeTextfile(file: string, text: string): Promise<void> {
  if (!file.endsWith('.prom'))
    throw usageError(
      `--textfile ${file} must end in .prom`,
      'node-exporter textfile collector reads only *.prom files',
    );
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, text, { mode: 0o644 });
    await chmod(tmp, 0o644);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    const err = e as NodeJS.ErrnoException;
    throw new LifeboatError('PERMISSION', `cannot write --textfile ${file}: ${err.code ?? err.message}`, {
      hint: 'point --textfile into an existing directory this user can write (node-exporter --collector.textfile.directory)',
      cause: e,
    });
  }
}

/** The Pushgateway group of this repository: POST = push-add, which replaces only the metrics pushed. */
export function pushUrl(base: string, instance: string): string {
  let u: URL;
  try {
    u = new URL(base);
  } catch {
    throw usageError(
      `--push ${base} is not a URL`,
      'give the Pushgateway address, e.g. http://pushgateway:9091',
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw usageError(`--push ${base} must be an http:// or https:// URL`);
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}/metrics/job/lifeboat/instance/${encodeURIComponent(instance)}`;
}

async function push(url: string, text: string, signal: AbortSignal): Promise<number> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': TEXT_CONTENT_TYPE },
      body: text,
      signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)]),
    });
  } catch (e) {
    throw new LifeboatError(
      'UNREACHABLE',
      `cannot push metrics to ${new URL(url).origin}: ${(e as Error).message}`,
      {
        hint: 'check --push (the Pushgateway address) and that it is reachable from here',
        cause: e,
        transient: true,
      },
    );
  }
  const body = (await res.text()).slice(0, 200).trim();
  if (!res.ok)
    throw new LifeboatError(
      'UNREACHABLE',
      `Pushgateway at ${new URL(url).origin} answered ${res.status}${body ? `: ${body}` : ''}`,
      { hint: 'check the Pushgateway log; metric names or types already pushed by another job may conflict' },
    );
  return res.status;
}

/** What --json prints: the families (non-finite values as strings), and where they went. */
interface MetricsResult {
  up: boolean;
  error?: { code: string; message: string };
  families: unknown[];
  textfile?: string;
  pushed?: string;
  /** The exposition text (not part of the JSON document). */
  readonly text: string;
}

export const metricsCommand: Command<MetricsResult> = {
  path: ['metrics'],
  summary:
    'repository health as Prometheus metrics: stdout, --textfile (node-exporter) or --push (Pushgateway)',
  options: {
    textfile: {
      type: 'string',
      arg: 'FILE',
      description: 'write them to FILE (*.prom, atomically) for the node-exporter textfile collector',
    },
    push: {
      type: 'string',
      arg: 'URL',
      description:
        'push them to a Pushgateway (push-add: POST to /metrics/job/lifeboat/instance/<repository id>)',
    },
    'push-instance': {
      type: 'string',
      arg: 'ID',
      description: 'instance label of the push (default: the repository id)',
    },
    'storage-quota': STORAGE_QUOTA_OPTION,
  },
  help: `
Metrics are computed from the repository (snapshots, run/drill/recovery records, the audit log), so every run
reports the same values whatever ran before. When the repository cannot be opened the metrics say so
(lifeboat_repository_up 0 with the error code) and are still written or pushed; the exit code is then 1.
Every metric is described in docs/monitoring.md.

  lifeboat metrics --textfile /var/lib/node-exporter/textfile/lifeboat.prom
  lifeboat metrics --push http://pushgateway.monitoring:9091 --storage-quota 500GiB`,
  async run(ctx, values) {
    const { metricFamilies } = await import('../observability/metrics.ts');
    const pushTo = str(values.push);
    if (pushTo) pushUrl(pushTo, 'check'); // a bad URL is a usage error before any work
    const collector = await collectorFor(ctx, values, 0);
    ctx.defer(() => collector.close());
    const report = await collector.report();
    const families = metricFamilies(report);
    const text = formatText(families);
    const result = {
      up: report.up,
      ...(report.up ? {} : { error: report.error }),
      families: familiesJson(families),
    } as MetricsResult;
    Object.defineProperty(result, 'text', { value: text, enumerable: false });
    const textfile = str(values.textfile);
    if (textfile) {
      await writeTextfile(textfile, text);
      result.textfile = textfile;
    }
    if (pushTo) {
      let instance = str(values['push-instance']) ?? (report.up ? report.id : undefined);
      if (!instance) {
        // The key records name the repository id without needing the key.
        const backend = await openBackend(ctx.globals.repo, ctx.env).catch(() => undefined);
        const keys = backend ? await Repository.listKeyRecords(backend).catch(() => []) : [];
        await backend?.close().catch(() => {});
        const id = keys.find((k) => k.record?.repositoryId)?.record.repositoryId;
        instance = id ? String(id) : undefined;
      }
      if (!instance)
        throw new LifeboatError(
          'UNREACHABLE',
          `cannot push: the repository is unreachable (${report.up ? '' : report.error.code}) and its id unknown`,
          {
            hint: 'pass --push-instance <repository id> (see `lifeboat metrics` output when it is reachable)',
          },
        );
      const url = pushUrl(pushTo, instance);
      await push(url, text, ctx.signal);
      result.pushed = url;
    }
    return result;
  },
  exitCode: (r) => (r.up ? EXIT_OK : EXIT_FAILED),
  human(r, out) {
    if (r.textfile || r.pushed) {
      if (r.textfile) out.line(`metrics written to ${r.textfile}`);
      if (r.pushed) out.line(`metrics pushed to ${r.pushed}`);
      if (r.error) out.line(`repository unreachable: ${r.error.code}: ${r.error.message}`);
      return;
    }
    process.stdout.write(r.text);
  },
};
