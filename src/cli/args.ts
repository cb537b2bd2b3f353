/**
 * Command-line arguments: each command declares its options (name, type, default, help), and
 * {@link parseArgs} reads `--name value`, `--name=value` and `--flag`, rejecting unknown options,
 * missing values, values of the wrong type and values out of the option's range with a
 * {@link UsageError} that names the option and the value: every check of a single option's value
 * is here, so a command starts work only with values it can use.
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
  /** The upper bound of a number (inclusive); an `int` option without one is bounded by `Number.MAX_SAFE_INTEGER`. */
  max?: number;
  /** An exclusive lower bound (`--top-p` is in (0, 1]). */
  above?: number;
  /** An exclusive upper bound (`--dropout` is in [0, 1)). */
  below?: number;
  /** Whether a string option takes the empty string (`--prompt ''`); an empty path or name is an error otherwise. */
  empty?: boolean;
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

/**
 * A value as an error message shows it: control characters escaped (the message stays one line)
 * and at most 60 characters (a pasted file is not echoed whole).
 */
export function shown(raw: string): string {
  const s = JSON.stringify(raw).slice(1, -1).replace(/\\"/g, '"');
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** A decimal number: digits, an optional fraction and exponent (no hex, octal, binary, Infinity or blanks). */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * The value of option `o` from its text `raw`, checked against the option's type, choices and
 * range; `label` names it in errors (`--steps`, or an environment variable).
 */
export function convert(o: OptionSpec, raw: string, label = `--${o.name}`): string | number {
  if (o.type === 'string') {
    if (raw === '' && !o.empty) throw new UsageError(`${label} needs a value (${placeholder(o)}), got ''`);
    if (o.choices && !o.choices.includes(raw)) throw new UsageError(`${label} must be one of ${o.choices.join(', ')}, got '${shown(raw)}'`);
    return raw;
  }
  const n = DECIMAL.test(raw) ? Number(raw) + 0 : NaN; // + 0: -0 is 0
  if (o.type === 'int' && !Number.isInteger(n)) throw new UsageError(`${label} expects an integer, got '${shown(raw)}'`);
  if (!Number.isFinite(n)) throw new UsageError(`${label} expects a number, got '${shown(raw)}'`);
  const max = o.max ?? (o.type === 'int' ? Number.MAX_SAFE_INTEGER : undefined);
  if (o.min !== undefined && n < o.min) throw new UsageError(`${label} must be ≥ ${o.min}, got ${shown(raw)}`);
  if (o.above !== undefined && !(n > o.above)) throw new UsageError(`${label} must be > ${o.above}, got ${shown(raw)}`);
  if (max !== undefined && n > max) throw new UsageError(`${label} must be ≤ ${max}, got ${shown(raw)}`);
  if (o.below !== undefined && !(n < o.below)) throw new UsageError(`${label} must be < ${o.below}, got ${shown(raw)}`);
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
      if (!spec.positional && i + 1 < argv.length) throw new UsageError(`unexpected argument '${shown(argv[i + 1]!)}'`);
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
        const near = name.length < 2 ? undefined : [...byName.keys()].find((k) => k.startsWith(name) || name.startsWith(k));
        throw new UsageError(`unknown option '--${shown(name)}'${near ? ` (did you mean --${near}?)` : ''}`);
      }
    } else if (/^-[a-zA-Z]$/.test(arg)) {
      opt = byShort.get(arg.slice(1));
      if (!opt) throw new UsageError(`unknown option '${arg}'`);
    } else {
      if (!spec.positional) throw new UsageError(`unexpected argument '${shown(arg)}'`);
      out._.push(arg);
      continue;
    }
    if (seen.has(opt.name)) throw new UsageError(`--${opt.name} is given more than once`);
    seen.add(opt.name);
    const key = camel(opt.name);
    if (opt.type === 'boolean') {
      if (inline === undefined) out[key] = true;
      else if (inline === 'true' || inline === 'false') out[key] = inline === 'true';
      else throw new UsageError(`--${opt.name} is a flag; it takes no value (got '${shown(inline)}')`);
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      const next = argv[i + 1];
      // a value may start with '-' only when it is a number (--temperature -1 is caught by min)
      if (next === undefined || (next.startsWith('-') && !/^-\.?\d/.test(next))) throw new UsageError(`--${opt.name} needs a value (${placeholder(opt)})`);
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
