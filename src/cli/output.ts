/**
 * Everything the CLI prints. With --json, stdout carries exactly one JSON document and nothing else.
 * Progress bars go to stderr, only on a TTY and never with --json or --quiet.
 */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export interface Progress {
  update(done: number, detail?: string): void;
  finish(): void;
}

export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  private readonly interactive: boolean;

  constructor(json: boolean, quiet: boolean, interactive = Boolean(process.stderr.isTTY)) {
    this.json = json;
    this.quiet = quiet;
    this.interactive = interactive && !json && !quiet;
  }

  /** A line of human output (suppressed with --json/--quiet). */
  line(text = ''): void {
    if (!this.json && !this.quiet) process.stdout.write(text + '\n');
  }

  /** A notice on stderr that --quiet suppresses but --json keeps out of stdout. */
  note(text: string): void {
    if (!this.quiet) process.stderr.write(text + '\n');
  }

  table(rows: string[][], header?: string[]): void {
    const all = header ? [header, ...rows] : rows;
    if (all.length === 0) return;
    const widths = all[0].map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
    for (const [i, r] of all.entries()) {
      this.line(r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  '));
      if (header && i === 0) this.line(widths.map((w) => '-'.repeat(w)).join('  '));
    }
  }

  document(value: unknown): void {
    process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  }

  progress(label: string, total?: number, unit: 'bytes' | 'count' = 'bytes'): Progress {
    if (!this.interactive) return { update() {}, finish() {} };
    const started = Date.now();
    let last = 0;
    const fmt = (n: number) => (unit === 'bytes' ? formatBytes(n) : String(n));
    const draw = (done: number, detail = '') => {
      const secs = Math.max(0.001, (Date.now() - started) / 1000);
      const rate = unit === 'bytes' ? `${formatBytes(done / secs)}/s` : `${(done / secs).toFixed(0)}/s`;
      let bar: string;
      if (total) {
        const width = 24;
        const filled = Math.min(width, Math.round((done / total) * width));
        bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${fmt(done)}/${fmt(total)} `;
      } else bar = `${fmt(done)} `;
      const text = `${label} ${bar}${rate} ${detail}`.slice(0, (process.stderr.columns ?? 100) - 1);
      process.stderr.write(`\r\x1b[2K${text}`);
    };
    return {
      update(done, detail) {
        const now = Date.now();
        if (now - last < 100) return;
        last = now;
        draw(done, detail);
      },
      finish() {
        process.stderr.write('\r\x1b[2K');
      },
    };
  }
}
