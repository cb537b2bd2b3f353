/**
 * Command-line arguments: each command declares its options (name, type, default, help), and
 * {@link parseArgs} reads `--name value`, `--name=value` and `--flag`, rejecting unknown options,
 * missing values and values of the wrong type with a {@link UsageError} that names the option.
 * {@link formatHelp} writes the command's `--help` from the same declaration.
 * @module
 */

/** A mistake in how a command was called: reported in one line, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The kinds of value an option takes. */
export type OptionType = 'string' | 'number' | 'int' | 'boolean';

/** One option of a command. */
export interface OptionSpec {
  /** The long name without dashes, kebab-case (`top-k`); its key in the parsed result is camelCase (`topK`). */
  name: string;
  type: OptionType;
  /** What it does, for `--help`. */
  help: string;
  /** What the value is called in `--help` (`N`, `PATH`); from the type when omitted. */
  placeholder?: string;
  /** A one-letter alias (`-o`). */
  short?: string;
  /** Shown in `--help` only; defaults are applied by the command, which may take them from a config. */
  defaultText?: string;
  /** Allowed values (strings only). */
  choices?: readonly string[];
  /** The lower bound of a number (inclusive). */
  min?: number;
}

/** A command: its name, what it does, how it is called, its options. */
export interface CommandSpec {
  name: string;
  summary: string;
  /** Usage lines after `kiln `, e.g. `train [--data PATH] [--steps N]`. */
  usage: string[];
  options: OptionSpec[];
  /** Extra paragraphs at the end of `--help`. */
  notes?: string[];
  /** Whether positional arguments are accepted (they are errors otherwise). */
  positional?: boolean;
}

/** Parsed options by camelCase name, and positional arguments in `_`. */
export interface ParsedArgs {
  _: string[];
  help: boolean;
  [option: string]: string | number | boolean | string[] | undefined;
}

const camel = (s: string): string => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function convert(o: OptionSpec, raw: string): string | number {
  const flag = `--${o.name}`;
  if (o.type === 'string') {
    if (o.choices && !o.choices.includes(raw)) throw new UsageError(`${flag} must be one of ${o.choices.join(', ')}, got '${raw}'`);
    return raw;
  }
  const n = raw.trim() === '' ? NaN : Number(raw);
  if (o.type === 'int' && !Number.isSafeInteger(n)) throw new UsageError(`${flag} expects an integer, got '${raw}'`);
  if (!Number.isFinite(n)) throw new UsageError(`${flag} expects a number, got '${raw}'`);
  if (o.min !== undefined && n < o.min) throw new UsageError(`${flag} must be ≥ ${o.min}, got ${raw}`);
  return n;
}

/**
 * Parse `argv` (the arguments after the command name) against `spec`. `--help`/`-h` sets
 * `help`. Throws {@link UsageError} on an unknown option, a missing or malformed value, an
 * option given twice, or a positional argument the command does not take.
 *
 * @example
 * parseArgs(trainSpec, ['--steps', '20', '--resume']); // { _: [], help: false, steps: 20, resume: true }
 */
export function parseArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const out: ParsedArgs = { _: [], help: false };
  const byName = new Map(spec.options.map((o) => [o.name, o]));
  const byShort = new Map(spec.options.filter((o) => o.short).map((o) => [o.short!, o]));
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      out.help = true;
      continue;
    }
    if (arg === '--') {
      if (!spec.positional && i + 1 < argv.length) throw new UsageError(`unexpected argument '${argv[i + 1]}'`);
      out._.push(...argv.slice(i + 1));
      break;
    }
    let opt: OptionSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      if (eq >= 0) inline = arg.slice(eq + 1);
      opt = byName.get(name);
      if (!opt) {
        const near = [...byName.keys()].find((k) => k.startsWith(name) || name.startsWith(k));
        throw new UsageError(`unknown option '--${name}'${near ? ` (did you mean --${near}?)` : ''}`);
      }
    } else if (/^-[a-zA-Z]$/.test(arg)) {
      opt = byShort.get(arg.slice(1));
      if (!opt) throw new UsageError(`unknown option '${arg}'`);
    } else {
      if (!spec.positional) throw new UsageError(`unexpected argument '${arg}'`);
      out._.push(arg);
      continue;
    }
    if (seen.has(opt.name)) throw new UsageError(`--${opt.name} is given more than once`);
    seen.add(opt.name);
    const key = camel(opt.name);
    if (opt.type === 'boolean') {
      if (inline === undefined) out[key] = true;
      else if (inline === 'true' || inline === 'false') out[key] = inline === 'true';
      else throw new UsageError(`--${opt.name} is a flag; it takes no value (got '${inline}')`);
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      const next = argv[i + 1];
      // a value may start with '-' only when it is a number (--temperature -1 is caught by min)
      if (next === undefined || (next.startsWith('-') && !/^-\d/.test(next))) throw new UsageError(`--${opt.name} needs a value (${placeholder(opt)})`);
      raw = next;
      i++;
    }
    out[key] = convert(opt, raw);
  }
  return out;
}

function placeholder(o: OptionSpec): string {
  if (o.placeholder) return o.placeholder;
  if (o.choices) return o.choices.join('|');
  return o.type === 'int' ? 'N' : o.type === 'number' ? 'X' : 'VALUE';
}

/** Word-wrap `text` to `width` columns, indenting continuation lines by `indent`. */
function wrap(text: string, width: number, indent: number): string {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > width - indent) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** The `--help` text of a command. */
export function formatHelp(spec: CommandSpec, width = 92): string {
  const lines = [`kiln ${spec.name}: ${spec.summary}`, '', 'usage:'];
  for (const u of spec.usage) lines.push(`  kiln ${u}`);
  if (spec.options.length) {
    lines.push('', 'options:');
    const left = spec.options.map((o) => `  ${o.short ? `-${o.short}, ` : ''}--${o.name}${o.type === 'boolean' ? '' : ` ${placeholder(o)}`}`);
    const col = Math.min(30, Math.max(...left.map((l) => l.length)) + 2);
    spec.options.forEach((o, i) => {
      const help = o.help + (o.defaultText ? ` (default: ${o.defaultText})` : '');
      const l = left[i]!;
      lines.push(l.length >= col ? `${l}\n${' '.repeat(col)}${wrap(help, width, col)}` : `${l.padEnd(col)}${wrap(help, width, col)}`);
    });
    lines.push(`  ${'-h, --help'.padEnd(col - 2)}show this help`);
  }
  for (const n of spec.notes ?? []) lines.push('', wrap(n, width, 0));
  return lines.join('\n');
}
