/**
 * The Prometheus text exposition format (version 0.0.4), written by hand: a few families of gauges and
 * counters need no client library. `# HELP` and `# TYPE` precede each family; label values escape `\`,
 * `"` and newlines, HELP text escapes `\` and newlines (the format's rules); values are Go-style floats
 * (`+Inf`, `-Inf`, `NaN`). `promtool check metrics` runs over real output in test/observability.
 */

export type MetricType = 'gauge' | 'counter';

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

/** The Content-Type of this format (what /metrics answers and what a Pushgateway expects). */
export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The families as exposition text; families without samples are left out (a HELP for nothing helps no one). */
export function formatText(families: MetricFamily[]): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`metric name ${f.name} is not valid`);
    if (seen.has(f.name)) throw new Error(`metric family ${f.name} given twice`);
    seen.add(f.name);
    if (!f.samples.length) continue;
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels)
        .filter(([, v]) => v !== '')
        .map(([k, v]) => {
          if (!LABEL.test(k) || k.startsWith('__'))
            throw new Error(`label name ${k} of ${f.name} is not valid`);
          return `${k}="${escapeLabelValue(v)}"`;
        });
      lines.push(`${f.name}${labels.length ? `{${labels.join(',')}}` : ''} ${formatValue(s.value)}`);
    }
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}
