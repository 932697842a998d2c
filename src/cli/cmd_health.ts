import type { HealthReport } from '../operations/health.ts';
import { int, list, str, usageError, type Command } from './command.ts';
import { EXIT_FAILED, EXIT_OK } from './exit.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';

export const healthCommand: Command<HealthReport> = {
  path: ['health'],
  summary:
    'is the application back? workloads rolled out, claims bound, no pod stuck; MongoDB and the smoke test answer',
  options: {
    ...KUBE_OPTIONS,
    namespace: {
      type: 'string',
      multiple: true,
      short: 'n',
      arg: 'NS',
      description: 'namespace whose workloads, PVCs and pods are checked (repeatable)',
    },
    'mongodb-uri': {
      type: 'string',
      arg: 'URI',
      description: 'also check that MongoDB answers (hello, buildInfo) at this URI',
    },
    'smoke-test-url': {
      type: 'string',
      arg: 'URL',
      description:
        "also GET the application's health URL, which must answer 2xx (default recover.smoke-test.url)",
    },
    'expect-field': {
      type: 'string',
      arg: 'PATH',
      description: 'the smoke-test answer must have this JSON field truthy (e.g. success)',
    },
    wait: {
      type: 'string',
      arg: 'SECONDS',
      default: '0',
      description: 'keep looking until everything passes or this long has passed (right after a restore)',
    },
    'poll-ms': { type: 'string', arg: 'MS', default: '2000', description: 'time between looks with --wait' },
  },
  help: `The guide's scripts/lifecycle/validate-cluster-health.sh, run after a recovery or a deployment.
Read-only. Checks, per namespace: every Deployment, StatefulSet and DaemonSet rolled out (kubectl rollout
status's rule: latest spec seen, every replica updated and ready); every PVC Bound (Pending without a pod
using it is a warning: WaitForFirstConsumer); no container in CrashLoopBackOff, ImagePullBackOff or a
config error. Exit 0 healthy (warnings allowed), 1 something failed (each failure named).
Examples:
  lifeboat health -n rocketchat --mongodb-uri mongodb://mongodb:27017 --smoke-test-url https://chat.example.com/api/info --wait 300`,
  async run(ctx, values) {
    const { checkHealth } = await import('../operations/health.ts');
    const { connectMongo, credentialsFromEnv, safeUri } = await import('../sources/mongodb/connect.ts');
    const namespaces = list(values.namespace);
    const recoverSmoke = (ctx.section('recover')['smoke-test'] ?? {}) as Record<string, unknown>;
    const smokeUrl =
      str(values['smoke-test-url']) ?? (typeof recoverSmoke.url === 'string' ? recoverSmoke.url : undefined);
    if (smokeUrl && !/^https?:\/\/[^/]/.test(smokeUrl))
      throw usageError(`smoke-test URL "${smokeUrl}" is not an http(s) URL`);
    const uri = str(values['mongodb-uri']);
    if (!namespaces.length && !uri && !smokeUrl)
      throw usageError(
        'nothing to check',
        'give --namespace (the cluster), --mongodb-uri and/or --smoke-test-url',
      );
    const waitSeconds = int(values.wait, 'wait') ?? 0;
    if (waitSeconds < 0) throw usageError('--wait must be 0 or more seconds');
    const kube = namespaces.length ? await kubeClient(ctx, values) : undefined;
    const creds = credentialsFromEnv(ctx.env);
    return checkHealth({
      kube,
      namespaces,
      mongo: uri
        ? {
            uri: safeUri(uri),
            connect: () =>
              connectMongo({
                uri,
                serverTimeoutMs: 10_000,
                username: creds.username,
                password: creds.password,
              }),
          }
        : undefined,
      smoke: smokeUrl ? { url: smokeUrl, expectField: str(values['expect-field']) } : undefined,
      waitMs: waitSeconds * 1000,
      pollMs: int(values['poll-ms'], 'poll-ms'),
      signal: ctx.signal,
      onWaiting: (failing, leftMs) =>
        ctx.out.note(
          `lifeboat: waiting up to ${Math.ceil(leftMs / 1000)} s more for ${failing.map((c) => `${c.subject} (${c.detail})`).join(', ')}`,
        ),
    });
  },
  exitCode: (r) => (r.ok ? EXIT_OK : EXIT_FAILED),
  human(r, out) {
    out.table(
      r.checks.map((c) => [c.check, c.subject, c.status === 'ok' ? 'ok' : c.status.toUpperCase(), c.detail]),
      ['CHECK', 'SUBJECT', 'STATUS', 'DETAIL'],
    );
    const failed = r.checks.filter((c) => c.status === 'failed').length;
    const warned = r.checks.filter((c) => c.status === 'warning').length;
    out.line(
      r.ok
        ? `healthy: ${r.checks.length} check(s) passed${warned ? `, ${warned} warning(s)` : ''}`
        : `NOT healthy: ${failed} of ${r.checks.length} check(s) failed${r.rounds > 1 ? ` after ${r.rounds} looks in ${Math.round(r.durationMs / 1000)} s` : ''}`,
    );
  },
  effect: 'verify',
  event: (r) => ({
    result: r.ok ? (r.checks.some((c) => c.status === 'warning') ? 'warning' : 'success') : 'failure',
    items: r.checks.length,
    details: {
      failed: r.checks.filter((c) => c.status === 'failed').length,
      warnings: r.checks.filter((c) => c.status === 'warning').length,
    },
  }),
};
