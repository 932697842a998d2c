/**
 * `lifeboat <area> <verb>`: finds the command, resolves its options (flag > environment > config file >
 * default), runs it, prints the result, and maps errors to exit codes through exit.ts.
 */
import { parseArgs } from 'node:util';
import { LifeboatError } from '../core/errors.ts';
import { Logger, redactString } from '../core/log.ts';
import type { Command, CommandContext, GlobalOptions, OptionSpec } from './command.ts';
import { COMMANDS, GLOBAL_OPTIONS } from './commands.ts';
import { EventBus } from '../core/events.ts';
import { eventSinks } from './event-sinks.ts';
import { CommandFailed, invoke } from './invoke.ts';
import { envName, findCommand, loadConfig, normalise, resolveOptions } from './options.ts';
import { EXIT_OK, EXIT_USAGE, exitCodeFor, exitCodeForSignal, toLifeboatError } from './exit.ts';
import { Output } from './output.ts';

export function helpText(cmd?: Command): string {
  const opt = (name: string, s: OptionSpec) =>
    `  ${s.short ? `-${s.short}, ` : '    '}--${name}${s.arg ? ` ${s.arg}` : ''}`.padEnd(34) +
    ` ${s.description}${s.default !== undefined && s.default !== false ? ` (default ${s.default})` : ''}`;
  if (!cmd) {
    const lines = [
      'Lifeboat — backup, restore and disaster recovery for MongoDB on Kubernetes',
      '',
      'Usage: lifeboat <command> [options]',
      '',
      'Commands:',
    ];
    for (const c of COMMANDS) lines.push(`  ${c.path.join(' ').padEnd(26)} ${c.summary}`);
    lines.push('', 'Global options:', ...Object.entries(GLOBAL_OPTIONS).map(([n, s]) => opt(n, s)));
    lines.push(
      '',
      'Run `lifeboat <command> --help` for a command, `lifeboat --version` for the version; docs/ has runbooks. Exit codes: 0 ok, 1 failed, 2 usage, 3 damage found, 4 busy (already running).',
    );
    return lines.join('\n');
  }
  const lines = [
    `Usage: lifeboat ${cmd.path.join(' ')}${cmd.usage ? ' ' + cmd.usage : ''} [options]`,
    '',
    cmd.summary,
  ];
  if (Object.keys(cmd.options).length) {
    lines.push('', 'Options:');
    for (const [n, s] of Object.entries(cmd.options))
      lines.push(opt(n, s) + (s.flagOnly ? '  [flag only]' : `  [env ${envName(cmd, n, s)}]`));
  }
  if (cmd.help) lines.push('', cmd.help.trim());
  lines.push('', 'Global options: see `lifeboat help`.');
  return lines.join('\n');
}

function printDefault(value: unknown, out: Output, indent = ''): void {
  if (value === null || typeof value !== 'object') {
    out.line(`${indent}${String(value)}`);
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (v !== null && typeof v === 'object') {
      out.line(`${indent}${k}:`);
      printDefault(v, out, indent + '  ');
    } else out.line(`${indent}${k}: ${v}`);
  }
}

/**
 * The version of the installed package. Read from package.json next to src/ (a checkout) or dist/ (the
 * packed package, where dist/cli/main.js sits at the same depth), so the version has one source.
 */
async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let json = argv.includes('--json') || ['1', 'true'].includes(String(env.LIFEBOAT_JSON));
  const controller = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  let deadline: NodeJS.Timeout | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stoppedBy) process.exit(exitCodeForSignal(sig));
    stoppedBy = sig;
    process.stderr.write(`\nlifeboat: ${sig} received — stopping cleanly (again to force)\n`);
    controller.abort(
      new LifeboatError('INTERRUPTED', `interrupted by ${sig}; nothing partial was committed`, {
        hint: 'run the command again',
        details: { signal: sig },
      }),
    );
    // Kubernetes sends SIGKILL 30 s after SIGTERM by default; stopping cleanly must not take a third
    // of that. Locks left by a forced exit are stale at once for this host (dead pid).
    deadline = setTimeout(() => {
      process.stderr.write(`lifeboat: still stopping after 9 s — exiting now\n`);
      process.exit(exitCodeForSignal(sig));
    }, 9_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const deferred: (() => Promise<void> | void)[] = [];
  try {
    // Command words may follow global options (`lifeboat --repo X files backup`): collect positionals,
    // skipping the values of global string options.
    const words: string[] = [];
    const wordIndex: number[] = [];
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === '--') break;
      if (a.startsWith('-')) {
        const name = a.replace(/^--?/, '');
        const spec =
          GLOBAL_OPTIONS[name] ?? Object.entries(GLOBAL_OPTIONS).find(([, s]) => s.short === name)?.[1];
        if (spec?.type === 'string' && !a.includes('=')) i++;
        continue;
      }
      words.push(a);
      wordIndex.push(i);
    }
    if (words.length === 0 && (argv[0] === '--version' || argv[0] === '-V')) {
      process.stdout.write(`lifeboat ${await packageVersion()}\n`);
      return EXIT_OK;
    }
    if (words[0] === 'help') {
      const { cmd } = findCommand(words.slice(1));
      process.stdout.write(helpText(cmd) + '\n');
      return EXIT_OK;
    }
    const { cmd } = findCommand(words);
    if (!cmd) {
      if (words.length === 0) {
        process.stdout.write(helpText() + '\n');
        return argv.some((a) => a === '--help' || a === '-h') ? EXIT_OK : EXIT_USAGE;
      }
      throw new LifeboatError('USAGE', `unknown command "${words.join(' ')}"`, {
        hint: 'run `lifeboat help` for the list',
      });
    }
    const specs = { ...GLOBAL_OPTIONS, ...cmd.options };
    let parsed;
    try {
      parsed = parseArgs({
        args: negativeValuesInline(
          argv.filter((_, i) => !wordIndex.slice(0, cmd.path.length).includes(i)),
          specs,
        ),
        options: Object.fromEntries(
          Object.entries(specs).map(([n, s]) => [
            n,
            {
              type: s.type,
              ...(s.multiple ? { multiple: true } : {}),
              ...(s.short ? { short: s.short } : {}),
            },
          ]),
        ),
        allowPositionals: true,
        strict: true,
      });
    } catch (e) {
      throw new LifeboatError('USAGE', (e as Error).message.split('\n')[0], {
        hint: `see \`lifeboat ${cmd.path.join(' ')} --help\``,
      });
    }
    if (parsed.values.help) {
      process.stdout.write(helpText(cmd) + '\n');
      return EXIT_OK;
    }
    const configFile =
      (parsed.values.config as string | undefined) ?? env.LIFEBOAT_CONFIG ?? './lifeboat.yaml';
    const config = loadConfig(configFile, Boolean(parsed.values.config ?? env.LIFEBOAT_CONFIG));
    const values = resolveOptions(cmd, parsed.values, env, config, configFile);
    json = Boolean(values.json);
    const globals: GlobalOptions = {
      repo: String(values.repo),
      config: configFile,
      json,
      quiet: Boolean(values.quiet),
      verbose: Boolean(values.verbose),
      keystore: values.keystore as string | undefined,
      passwordFile: values['password-file'] as string | undefined,
      keyFile: values['key-file'] as string | undefined,
    };
    const out = new Output(json, globals.quiet);
    const log = new Logger(
      globals.verbose ? 'debug' : 'warn',
      env.LIFEBOAT_LOG_FORMAT === 'json' ? 'json' : 'text',
      { command: cmd.path.join(' ') },
    );
    const warn = (message: string) => {
      if (log.format === 'json') log.log('warn', message);
      else process.stderr.write(`lifeboat: warning: ${redactString(message)}\n`);
    };
    const ctx: CommandContext = {
      globals,
      out,
      log,
      env,
      signal: controller.signal,
      section: (name) => normalise(config[name]),
      command: cmd.path.join(' '),
      defer: (fn) => void deferred.push(fn),
      warn,
      config,
      configFile,
      events: new EventBus([], () => {}),
    };
    ctx.events = new EventBus(eventSinks(ctx), (sink, e) =>
      warn(`event not delivered to ${sink}: ${(e as Error)?.message ?? String(e)}`),
    );
    log.debug('starting', { repo: globals.repo });
    const { result, exitCode } = await invoke(cmd, ctx, values, parsed.positionals);
    await runDeferred(deferred);
    if (json) out.document(result);
    else if (!globals.quiet) {
      if (cmd.human) cmd.human(result, out);
      else printDefault(result, out);
    }
    return exitCode;
  } catch (caught) {
    const e = caught instanceof CommandFailed ? caught.error : caught;
    await runDeferred(deferred);
    // Whatever a source threw once the signal arrived (a closed socket, an aborted read), the cause is
    // the signal: report it as such, with its exit code.
    const err = stoppedBy ? toLifeboatError(controller.signal.reason) : toLifeboatError(e);
    if (json) process.stdout.write(JSON.stringify({ error: err.toJSON() }, null, 2) + '\n');
    process.stderr.write(`lifeboat: ${redactString(err.oneLine())}\n`);
    if (argv.includes('--verbose') || argv.includes('-v')) {
      const stack = (err.cause as Error | undefined)?.stack ?? err.stack;
      if (stack) process.stderr.write(redactString(stack) + '\n');
    }
    return stoppedBy ? exitCodeForSignal(stoppedBy) : exitCodeFor(err);
  } finally {
    // main() may run in a process that lives on (the demo, in-process tests): no exit after it returned.
    clearTimeout(deadline);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Releases locks and closes storage, newest first; a failure here must not hide the command's result. */
async function runDeferred(deferred: (() => Promise<void> | void)[]): Promise<void> {
  while (deferred.length) {
    const fn = deferred.pop()!;
    try {
      await fn();
    } catch (e) {
      process.stderr.write(`lifeboat: warning: cleanup failed: ${redactString((e as Error).message)}\n`);
    }
  }
}

/**
 * `--keep-last -1`: parseArgs reads "-1" as an option and calls the argument ambiguous. A string option
 * followed by a negative number takes it as its value (`--keep-last=-1`).
 */
function negativeValuesInline(args: string[], specs: Record<string, OptionSpec>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^--([^=]+)$/.exec(a);
    if (m && specs[m[1]]?.type === 'string' && i + 1 < args.length && /^-\d+$/.test(args[i + 1])) {
      out.push(`${a}=${args[++i]}`);
    } else out.push(a);
  }
  return out;
}
