/**
 * One typed event per command that changes or verifies something (backup, restore, prune, forget, check,
 * validate, drills, pipeline stages, recovery, secrets, key changes). It is the single source for metrics,
 * notifications and the audit log: those are sinks of the same event, never separate code paths.
 *
 * The schema is versioned (`schema`); fields are only ever added. An event never carries a secret value:
 * `details` takes numbers, booleans and short strings that the emitting command chose, and every string
 * passes through the log redaction before a sink sees it.
 */
import { hostname, userInfo } from 'node:os';
import { randomUUID } from 'node:crypto';
import { redactString } from './log.ts';

export const EVENT_SCHEMA = 'lifeboat.event/v1';

/** `warning`: it worked, but something needs a look (a stale layer, a drill over 80 % of its budget). */
export type EventResult = 'success' | 'warning' | 'partial' | 'failure' | 'interrupted';

export type EventEffect = 'change' | 'verify';

export interface LifeboatEvent {
  schema: typeof EVENT_SCHEMA;
  id: string;
  /** `mongodb backup`, `check`, `pipeline stage`, … (the CLI words). */
  operation: string;
  effect: EventEffect;
  /** Snapshot type or `repository`, when the operation is about one layer. */
  layer?: string;
  result: EventResult;
  exitCode: number;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** Repository location, credentials redacted. */
  repository: string;
  snapshot?: string;
  runId?: string;
  stage?: string;
  bytesProcessed?: number;
  bytesAdded?: number;
  items?: number;
  /** Who: LIFEBOAT_ACTOR, else the OS user (a pod's is its ServiceAccount via LIFEBOAT_ACTOR). */
  actor: string;
  host: string;
  error?: { code: string; message: string };
  details?: Record<string, string | number | boolean>;
}

/** What a command adds to its event from its result. */
export interface EventDetail {
  layer?: string;
  result?: EventResult;
  snapshot?: string;
  bytesProcessed?: number;
  bytesAdded?: number;
  items?: number;
  details?: Record<string, string | number | boolean>;
}

/** A consumer of events: the audit log, notifications, the log. Delivery failures never fail a command. */
export interface EventSink {
  readonly name: string;
  deliver(event: LifeboatEvent): Promise<void>;
}

export function eventActor(env: NodeJS.ProcessEnv): string {
  if (env.LIFEBOAT_ACTOR) return env.LIFEBOAT_ACTOR;
  try {
    return userInfo().username;
  } catch {
    return env.USER ?? 'unknown';
  }
}

export interface NewEvent extends EventDetail {
  operation: string;
  effect: EventEffect;
  result: EventResult;
  exitCode: number;
  startedAt: Date;
  finishedAt: Date;
  repository: string;
  runId?: string;
  stage?: string;
  actor: string;
  host?: string;
  error?: { code: string; message: string };
}

export function makeEvent(e: NewEvent): LifeboatEvent {
  const details = e.details
    ? Object.fromEntries(
        Object.entries(e.details).map(([k, v]) => [k, typeof v === 'string' ? redactString(v) : v]),
      )
    : undefined;
  const event: LifeboatEvent = {
    schema: EVENT_SCHEMA,
    id: randomUUID(),
    operation: e.operation,
    effect: e.effect,
    layer: e.layer,
    result: e.result,
    exitCode: e.exitCode,
    startedAt: e.startedAt.toISOString(),
    finishedAt: e.finishedAt.toISOString(),
    durationMs: e.finishedAt.getTime() - e.startedAt.getTime(),
    repository: redactString(e.repository),
    snapshot: e.snapshot,
    runId: e.runId,
    stage: e.stage,
    bytesProcessed: e.bytesProcessed,
    bytesAdded: e.bytesAdded,
    items: e.items,
    actor: e.actor,
    host: e.host ?? hostname(),
    error: e.error ? { code: e.error.code, message: redactString(e.error.message) } : undefined,
    details,
  };
  // Undefined fields out, so JSON consumers see only what was set.
  for (const k of Object.keys(event) as (keyof LifeboatEvent)[]) if (event[k] === undefined) delete event[k];
  return event;
}

/** Hands each event to every sink; a sink that fails is reported through `onSinkError`, never thrown. */
export class EventBus {
  private readonly sinks: EventSink[];
  private readonly onSinkError: (sink: string, error: unknown) => void;

  constructor(sinks: EventSink[], onSinkError: (sink: string, error: unknown) => void) {
    this.sinks = sinks;
    this.onSinkError = onSinkError;
  }

  async emit(event: LifeboatEvent): Promise<void> {
    await Promise.all(
      this.sinks.map(async (s) => {
        try {
          await s.deliver(event);
        } catch (e) {
          this.onSinkError(s.name, e);
        }
      }),
    );
  }
}
