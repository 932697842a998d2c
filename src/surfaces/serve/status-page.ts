/**
 * The status page of `lifeboat serve`, for people: one server-rendered HTML document (no script, no
 * front-end build) from the same report the metrics come from. Per layer the last backup and its age,
 * the newest verified restore point (its age is the real RPO), storage over time as an inline SVG plot,
 * the last drills and recoveries with their duration against the RTO budget, and the alerts that would
 * fire (src/observability/alerts.ts, the same conditions as the Prometheus rules). It shows no secret:
 * the location is redacted and nothing from a key, a keystore or an environment variable is on it.
 */
import { firingAlerts, THRESHOLDS } from '../../observability/alerts.ts';
import {
  lastStatus,
  metricFamilies,
  type MetricsReport,
  type OperationSummary,
  type StoragePoint,
  type UpReport,
} from '../../observability/metrics.ts';

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

const h = escapeHtml;

export function formatAge(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'never';
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86_400).toFixed(1)} d`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

function time(ms: number | undefined, now: number): string {
  if (ms === undefined) return '<span class="muted">—</span>';
  return `<time datetime="${iso(ms)}">${h(iso(ms))}</time> <span class="age">(${formatAge((now - ms) / 1000)} ago)</span>`;
}

function statusBadge(status: string): string {
  const cls =
    status === 'success' ? 'ok' : status === 'warning' ? 'warn' : status === 'running' ? 'muted' : 'bad';
  return `<span class="badge ${cls}">${h(status)}</span>`;
}

/** Stored size over time as an inline SVG line (x: time, y: bytes), with the quota as a dashed line. */
export function storagePlot(points: StoragePoint[], quota?: number): string {
  const W = 640;
  const H = 200;
  const pad = { l: 70, r: 10, t: 10, b: 30 };
  if (points.length === 0) return '<p class="muted" id="storage-plot-empty">no snapshots yet</p>';
  const t0 = points[0].at;
  const t1 = Math.max(points.at(-1)!.at, t0 + 1);
  const yMax = Math.max(...points.map((p) => p.storedBytes), quota ?? 0, 1) * 1.05;
  const x = (t: number) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const y = (b: number) => H - pad.b - (b / yMax) * (H - pad.t - pad.b);
  const path = points
    .map((p, i) => `${i ? 'L' : 'M'}${x(p.at).toFixed(1)},${y(p.storedBytes).toFixed(1)}`)
    .join(' ');
  const dots = points
    .map(
      (p) =>
        `<circle cx="${x(p.at).toFixed(1)}" cy="${y(p.storedBytes).toFixed(1)}" r="2.5"><title>${h(iso(p.at))}: ${h(bytes(p.storedBytes))}</title></circle>`,
    )
    .join('');
  const quotaLine =
    quota !== undefined
      ? `<line class="quota" x1="${pad.l}" x2="${W - pad.r}" y1="${y(quota).toFixed(1)}" y2="${y(quota).toFixed(1)}"/><text x="${W - pad.r}" y="${(y(quota) - 4).toFixed(1)}" text-anchor="end" class="axis">quota ${h(bytes(quota))}</text>`
      : '';
  return `<svg id="storage-plot" role="img" aria-label="stored bytes over time" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">
<line class="axisline" x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}"/>
<line class="axisline" x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}"/>
<text class="axis" x="${pad.l - 6}" y="${y(yMax / 1.05) + 4}" text-anchor="end">${h(bytes(yMax / 1.05))}</text>
<text class="axis" x="${pad.l - 6}" y="${H - pad.b + 4}" text-anchor="end">0</text>
<text class="axis" x="${pad.l}" y="${H - 8}">${h(iso(t0).slice(0, 10))}</text>
<text class="axis" x="${W - pad.r}" y="${H - 8}" text-anchor="end">${h(iso(t1).slice(0, 10))}</text>
${quotaLine}<path class="line" d="${path}"/>${dots}</svg>`;
}

function operationsTable(id: string, title: string, list: OperationSummary[], now: number): string {
  if (!list.length)
    return `<section id="${id}"><h2>${h(title)}</h2><p class="muted">none recorded yet</p></section>`;
  const rows = list
    .map((r) => {
      const over = r.durationMs !== undefined && r.budgetMs !== undefined && r.durationMs > r.budgetMs;
      const layers = r.steps
        .filter((s) => s.layer && s.durationMs !== undefined)
        .map(
          (s) =>
            `${h(s.layer!)} ${formatAge(s.durationMs! / 1000)}${s.budgetMs ? ` / ${formatAge(s.budgetMs / 1000)}` : ''} ${statusBadge(s.status)}`,
        )
        .join('<br>');
      return `<tr data-id="${h(r.id)}"><td>${h(r.id)}</td><td>${time(r.finishedAt ?? r.startedAt, now)}</td><td>${statusBadge(r.status)}</td><td class="${over ? 'overbudget' : ''}">${r.durationMs !== undefined ? h(formatAge(r.durationMs / 1000)) : '—'}</td><td>${r.budgetMs !== undefined ? h(formatAge(r.budgetMs / 1000)) : '—'}</td><td>${layers || '—'}</td></tr>`;
    })
    .join('\n');
  return `<section id="${id}"><h2>${h(title)}</h2><table><thead><tr><th>id</th><th>ended</th><th>status</th><th>duration</th><th>RTO budget</th><th>per layer (duration / budget)</th></tr></thead><tbody>
${rows}
</tbody></table></section>`;
}

function upBody(r: UpReport): string {
  const now = r.generatedAt;
  const nowS = now / 1000;
  const alerts = firingAlerts(metricFamilies(r), nowS);
  const alertsHtml = alerts.length
    ? `<ul>${alerts
        .map(
          (a) =>
            `<li class="alert ${a.severity}" data-alert="${h(a.alert)}"><strong>${h(a.alert)}</strong> <span class="badge ${a.severity === 'critical' ? 'bad' : 'warn'}">${a.severity}</span> ${h(a.summary)} — <span class="runbook">runbook: <code>docs/runbooks.md#${h(a.runbook)}</code></span></li>`,
        )
        .join('')}</ul>`
    : '<p class="ok-text" id="no-alerts">No alert would fire.</p>';
  const layerRows = r.layers
    .map((l) => {
      const st = lastStatus(l);
      const age = l.lastSuccess ? (now - l.lastSuccess.at) / 1000 : Infinity;
      const stale = age > THRESHOLDS.backupMaxAgeSeconds;
      return `<tr data-layer="${h(l.layer)}"><td>${h(l.layer)}</td><td class="${stale ? 'stale' : ''}">${time(l.lastSuccess?.at, now)}</td><td>${st === undefined ? '—' : statusBadge(st ? 'success' : 'failure')}${l.lastFailure && st === 0 ? ` <span class="muted">${h(l.lastFailure.code ?? '')}</span>` : ''}</td><td>${l.lastSuccess ? h(formatAge(l.lastSuccess.durationMs / 1000)) : '—'}</td><td>${l.lastSuccess ? h(bytes(l.lastSuccess.bytesAdded)) : '—'}</td><td>${l.snapshots}</td><td class="restore-point">${l.verified ? `${time(l.verified.snapshotTime, now)} <span class="muted">by ${h(l.verified.by)} ${h(l.verified.operation)}</span>` : '<span class="muted">never verified</span>'}</td></tr>`;
    })
    .join('\n');
  const quota =
    r.quotaBytes !== undefined
      ? `<li>quota <strong>${h(bytes(r.quotaBytes))}</strong> (${((r.storedBytes / r.quotaBytes) * 100).toFixed(1)} % used)${r.timeToQuotaSeconds !== undefined ? `, full in <strong id="time-to-quota">${h(formatAge(r.timeToQuotaSeconds))}</strong> at the growth of the last 30 days` : ''}</li>`
      : '<li class="muted">no storage quota configured (metrics.storage-quota)</li>';
  return `<section id="alerts"><h2>Alerts that would fire</h2>${alertsHtml}</section>
<section id="layers"><h2>Backups per layer</h2><table><thead><tr><th>layer</th><th>last backup</th><th>last attempt</th><th>duration</th><th>added</th><th>snapshots</th><th>newest verified restore point (age = RPO)</th></tr></thead><tbody>
${layerRows || '<tr><td colspan="7" class="muted">no backups yet</td></tr>'}
</tbody></table></section>
<section id="storage"><h2>Storage</h2><ul><li>stored <strong id="stored-bytes">${h(bytes(r.storedBytes))}</strong>, logical ${h(bytes(r.logicalBytes))}</li>${quota}</ul>
${storagePlot(r.history, r.quotaBytes)}</section>
${operationsTable('drills', 'Restore drills', r.drills, now)}
${operationsTable('recoveries', 'Recoveries', r.recoveries, now)}`;
}

const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1100px}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f6f6f6}.muted{color:#888}.age{color:#666}.badge{padding:0 .4em;border-radius:3px;font-size:.9em}
.ok{background:#d4f4dd;color:#145c26}.warn{background:#fff1c2;color:#7a5a00}.bad{background:#fbd5d5;color:#8a1010}
.stale,.overbudget{color:#b00;font-weight:bold}.alert{margin:.2em 0}.ok-text{color:#145c26}
#storage-plot .line{fill:none;stroke:#2a6fdb;stroke-width:2}#storage-plot circle{fill:#2a6fdb}
#storage-plot .quota{stroke:#b00;stroke-dasharray:5 4}.axis{font-size:11px;fill:#555}.axisline{stroke:#999}
.down{background:#fbd5d5;padding:1em;border-radius:4px}`;

export function renderStatusPage(r: MetricsReport): string {
  const body = r.up
    ? upBody(r)
    : `<section id="alerts"><h2>Alerts that would fire</h2><ul><li class="alert critical" data-alert="LifeboatRepositoryUnreachable"><strong>LifeboatRepositoryUnreachable</strong> <span class="badge bad">critical</span> The Lifeboat repository cannot be opened</li></ul></section>
<p class="down" id="repository-down"><strong>${h(r.error.code)}</strong>: ${h(r.error.message)}</p>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lifeboat status</title><style>${STYLE}</style></head>
<body><header><h1>Lifeboat status</h1>
<p class="muted">repository <code id="location">${h(r.location)}</code>${r.up ? ` · id <code>${h(r.id.slice(0, 12))}</code>` : ''} · as of <time datetime="${iso(r.generatedAt)}" id="generated">${h(iso(r.generatedAt))}</time> · <a href="/metrics">/metrics</a></p></header>
<main>
${body}
</main></body></html>
`;
}
