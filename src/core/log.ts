/**
 * Structured logs on stderr: JSON lines when LIFEBOAT_LOG_FORMAT=json (for log shippers), `level msg k=v`
 * otherwise. Every field passes through `redact`, so credentials never reach a log even by accident.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const SECRET_KEY =
  /^(?:.*[-_])?(?:pass(?:word|phrase)?|secret|token|key|credentials?|sas|connection-?string|authorization)$/i;

/** Hides credentials in URIs and connection strings. */
export function redactString(s: string): string {
  return s
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)[^@\s]+@/gi, '$1***@')
    .replace(/((?:AccountKey|SharedAccessSignature|sig|password|pwd)=)[^;&\s]+/gi, '$1***');
}

export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Error) return redactString(value.message);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value))
    out[k] = SECRET_KEY.test(k) && typeof v === 'string' ? '***' : redact(v, depth + 1);
  return out;
}

export class Logger {
  level: Level;
  format: 'text' | 'json';
  private readonly fields: Record<string, unknown>;

  constructor(level: Level = 'warn', format: 'text' | 'json' = 'text', fields: Record<string, unknown> = {}) {
    this.level = level;
    this.format = format;
    this.fields = fields;
  }

  child(fields: Record<string, unknown>): Logger {
    return new Logger(this.level, this.format, { ...this.fields, ...fields });
  }

  log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
    if (ORDER[level] < ORDER[this.level]) return;
    const all = redact({ ...this.fields, ...fields }) as Record<string, unknown>;
    if (this.format === 'json') {
      process.stderr.write(
        JSON.stringify({ time: new Date().toISOString(), level, msg: redactString(msg), ...all }) + '\n',
      );
    } else {
      const kv = Object.entries(all)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      process.stderr.write(`${level}: ${redactString(msg)}${kv ? ' ' + kv : ''}\n`);
    }
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log('error', msg, fields);
  }
}
