// The one flag parser of every command: node:util parseArgs, so `--flag value` and `--flag=value` both work
// everywhere, and every mistake is the same one-line UsageError naming the flag.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError, type CommandContext } from './command.js';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** Every command reads its config from `--config FILE` (`-c`), else from REGMIRROR_CONFIG (ctx.configFile). */
const CONFIG_OPTION = { config: { type: 'string', short: 'c' } } as const;

export interface CommandSpec<O extends ParseArgsOptionsConfig> {
  command: string;
  help: string;
  options: O;
  /** Whether the command takes IMAGE or FILE arguments. */
  positionals?: boolean;
}

type Value<C extends ParseArgsOptionsConfig[string]> = C['type'] extends 'string' ? string : boolean;

/** What parseArgs gives for each option: undefined when absent, a list for `multiple`. */
export type FlagValues<O extends ParseArgsOptionsConfig> = { [K in keyof O]?: O[K]['multiple'] extends true ? Value<O[K]>[] : Value<O[K]> };

export type Token = NonNullable<ReturnType<typeof parseArgs>['tokens']>[number];

export interface ParsedFlags<O extends ParseArgsOptionsConfig> {
  values: FlagValues<O>;
  positionals: string[];
  /** Options and positionals in command-line order, for what depends on order (`-f` lists among images). */
  tokens: Token[];
  configFile: string | undefined;
}

export function parseFlags<const O extends ParseArgsOptionsConfig>(ctx: CommandContext, spec: CommandSpec<O>): ParsedFlags<O> {
  const options: ParseArgsOptionsConfig = { ...CONFIG_OPTION, ...spec.options };
  const allowPositionals = spec.positionals ?? false;
  try {
    const { values, positionals, tokens } = parseArgs({ args: ctx.args, options, strict: true, allowPositionals, tokens: true });
    return { values: values as FlagValues<O>, positionals, tokens, configFile: (values.config as string | undefined) ?? ctx.configFile };
  } catch (err) {
    if (!String((err as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS_')) throw err;
    const reason = mistake(ctx.args, options, allowPositionals) ?? (err as Error).message.split('\n')[0];
    throw new UsageError(`${spec.command}: ${reason}`, spec.help);
  }
}

/** The name of whichever of `names` came last on the command line (the later of two exclusive flags wins). */
export function lastOf(tokens: Token[], names: readonly string[]): string | undefined {
  const last = tokens.findLast((t) => t.kind === 'option' && names.includes(t.name));
  return last?.kind === 'option' ? last.name : undefined;
}

/**
 * parseArgs' errors are several sentences and carry no flag name; the lenient parse of the same arguments
 * yields tokens, and the first bad one says which flag to name.
 */
function mistake(args: string[], options: ParseArgsOptionsConfig, allowPositionals: boolean): string | undefined {
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind === 'positional' && !allowPositionals) return `unexpected argument ${JSON.stringify(t.value)}`;
    if (t.kind !== 'option') continue;
    const type = Object.hasOwn(options, t.name) ? options[t.name]?.type : undefined;
    if (type === undefined) return `unknown flag ${t.rawName}`;
    // `--listen --offline`: strict parsing refuses to take a flag for a value.
    if (type === 'string' && (t.value === undefined || (!t.inlineValue && t.value.startsWith('-')))) return `${t.rawName} needs a value`;
    if (type === 'boolean' && t.value !== undefined) return `${t.rawName} takes no value`;
  }
  return undefined;
}
