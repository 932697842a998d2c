import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { LifeboatError } from '../../src/core/errors.ts';
import {
  listOperations,
  loadOperation,
  runOperation,
  type StepDefinition,
} from '../../src/operations/runner.ts';

const keystore = () => new PassphraseKeystore('pw', 'test', { N: 1024, r: 8, p: 1 });
const repo = () => Repository.init(new MemoryBackend(), keystore());
const base = { kind: 'run' as const, actor: 'test', budget: 'abort' as const };
const ok = (name: string, extra: Partial<StepDefinition> = {}): StepDefinition => ({
  name,
  onFailure: 'stop',
  run: async () => ({ snapshot: `snap-${name}` }),
  ...extra,
});
const failing = (name: string, onFailure: 'stop' | 'continue'): StepDefinition => ({
  name,
  onFailure,
  run: async () => {
    throw new LifeboatError('UNREACHABLE', `${name} server down`, { hint: 'start it' });
  },
});

describe('operation runner', () => {
  test('a continue-failure makes the run partial; a stop-failure skips the rest and fails it', async () => {
    const r = await repo();
    const partial = await runOperation([ok('a'), failing('b', 'continue'), ok('c')], {
      ...base,
      records: r,
      signal: new AbortController().signal,
    });
    assert.equal(partial.status, 'partial');
    assert.deepEqual(
      partial.steps.map((s) => s.status),
      ['success', 'failure', 'success'],
    );
    assert.deepEqual(partial.steps[1].error, {
      code: 'UNREACHABLE',
      message: 'b server down',
      hint: 'start it',
    });
    assert.equal(partial.steps[0].snapshot, 'snap-a');

    const stopped = await runOperation([ok('a'), failing('b', 'stop'), ok('c')], {
      ...base,
      records: r,
      signal: new AbortController().signal,
    });
    assert.equal(stopped.status, 'failure');
    assert.deepEqual(
      stopped.steps.map((s) => s.status),
      ['success', 'failure', 'not-run'],
    );
    // Written as it went: the stored newest state is the returned one, and both runs are listed.
    assert.deepEqual(await loadOperation(r, 'run', stopped.id), JSON.parse(JSON.stringify(stopped)));
    assert.equal((await listOperations(r, 'run')).length, 2);
    assert.ok((await r.records.list('run', stopped.id)).length >= 4, 'one record per transition');
  });

  test('budgets: abort stops a step that runs out; mark lets it finish and fails it; 80 % warns', async () => {
    const r = await repo();
    let clock = 0;
    const now = () => clock;
    const slow: StepDefinition = {
      name: 'slow',
      onFailure: 'continue',
      budgetMs: 20,
      run: (signal) =>
        new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
        ),
    };
    const aborted = await runOperation([slow], { ...base, records: r, signal: new AbortController().signal });
    assert.equal(aborted.steps[0].status, 'failure');
    assert.equal(aborted.steps[0].error?.code, 'TIMEOUT');

    const took = (ms: number): StepDefinition => ({
      name: `took-${ms}`,
      onFailure: 'continue',
      budgetMs: 100,
      run: async () => {
        clock += ms;
        return {};
      },
    });
    const marked = await runOperation([took(50), took(90), took(150)], {
      ...base,
      budget: 'mark',
      records: r,
      signal: new AbortController().signal,
      now,
    });
    assert.deepEqual(
      marked.steps.map((s) => [s.status, s.durationMs]),
      [
        ['success', 50],
        ['warning', 90],
        ['failure', 150],
      ],
    );
    assert.match(marked.steps[2].error!.message, /over its budget/);
  });

  test('interrupted: the record says so; resume skips finished steps and restarts the one in progress', async () => {
    const r = await repo();
    const calls: string[] = [];
    const controller = new AbortController();
    const steps = (interruptAt?: string): StepDefinition[] =>
      ['a', 'b', 'c'].map((name) => ({
        name,
        onFailure: 'stop' as const,
        run: async (signal: AbortSignal) => {
          calls.push(name);
          if (name === interruptAt) {
            controller.abort(new LifeboatError('INTERRUPTED', 'SIGTERM'));
            signal.throwIfAborted();
          }
          return { snapshot: `s-${name}` };
        },
      }));
    const first = await runOperation(steps('b'), { ...base, records: r, signal: controller.signal });
    assert.equal(first.status, 'interrupted');
    assert.deepEqual(
      first.steps.map((s) => s.status),
      ['success', 'interrupted', 'not-run'],
    );
    const stored = await loadOperation(r, 'run', first.id);
    assert.equal(stored?.status, 'interrupted');

    calls.length = 0;
    const resumed = await runOperation(steps(), {
      ...base,
      records: r,
      signal: new AbortController().signal,
      resume: stored,
    });
    assert.deepEqual(calls, ['b', 'c'], 'a was not repeated');
    assert.equal(resumed.id, first.id);
    assert.equal(resumed.status, 'success');
    assert.equal(resumed.steps[1].attempts, 2);
    assert.equal(resumed.resumes?.length, 1);
  });
});
