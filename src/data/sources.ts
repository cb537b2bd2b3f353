/**
 * Reading documents: plain-text files (a whole file, one document per line, or one per
 * paragraph), folders of text files (recursive, in a fixed order), JSONL files (one JSON object
 * per line, the text in a named field) and documents already in memory.
 *
 * Every reader is an async iterable, so a corpus larger than memory streams through cleaning and
 * tokenisation; {@link readDocuments} collects one into an array when it fits.
 * @module
 */
import { open, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** One document of a corpus. */
export interface TextDocument {
  /** Unique within a corpus: the file path, `path:line` for line-based formats, or a given id. */
  id: string;
  /** The document's text. */
  text: string;
  /** Which source it came from: the path or name the source was given as. */
  source: string;
}

/**
 * How a text file becomes documents: `'file'` one document per file; `'line'` one per non-blank
 * line; `'paragraph'` one per run of non-blank lines (separated by lines that are empty or
 * whitespace only), lines joined by `\n`.
 */
export type SplitMode = 'file' | 'line' | 'paragraph';

/** A line of a JSONL file that was skipped, and why. */
export interface SourceIssue {
  /** The file. */
  source: string;
  /** 1-based line number. */
  line: number;
  /** What was wrong: `invalid JSON (...)`, `not an object`, `field 'text' missing`, ... */
  reason: string;
}

/** Options of {@link readText}. */
export interface TextOptions {
  /** How the file becomes documents; `'file'` by default. */
  split?: SplitMode;
  /** The `source` of the documents; the path by default. */
  label?: string;
}

/** Options of {@link readFolder} and {@link listFiles}. */
export interface FolderOptions extends TextOptions {
  /** Only files whose names end with one of these (case-insensitive; `'txt'` and `'.txt'` both work). All files when omitted. */
  extensions?: readonly string[];
  /** Include files and folders whose names start with `.` (skipped by default). */
  includeHidden?: boolean;
}

/** Options of {@link readJsonl}. */
export interface JsonlOptions {
  /** The field that holds the text; `'text'` by default. */
  field?: string;
  /** A field that holds the document's id (a string or number); `path:line` when omitted. */
  idField?: string;
  /** A bad line throws (`'throw'`, the default) or is skipped and passed to `onSkip` (`'skip'`). */
  onError?: 'throw' | 'skip';
  /** Called with every skipped line. */
  onSkip?: (issue: SourceIssue) => void;
  /** The `source` of the documents; the path by default. */
  label?: string;
}

/** A document given in memory: a string, or an object with text and optionally id and source. */
export type DocumentLike = string | { text: string; id?: string; source?: string };

/**
 * Where documents come from. A string is a path: a folder is read with {@link readFolder}, a file
 * ending in `.jsonl` or `.ndjson` with {@link readJsonl}, any other file with {@link readText}.
 */
export type SourceSpec =
  | string
  | ({ type: 'text'; path: string } & TextOptions)
  | ({ type: 'folder'; path: string } & FolderOptions)
  | ({ type: 'jsonl'; path: string } & JsonlOptions)
  | {
      type: 'documents';
      /** The `source` of documents that have none, and the prefix of generated ids (`name:i`); `'memory'` by default. */
      name?: string;
      documents: Iterable<DocumentLike> | AsyncIterable<DocumentLike>;
    };

/** Options that apply to every source read by {@link readSources}. */
export interface ReadOptions {
  /** Default for JSONL sources that do not set `onError`. */
  onError?: 'throw' | 'skip';
  /** Called with every skipped JSONL line (in addition to a source's own `onSkip`). */
  onSkip?: (issue: SourceIssue) => void;
}

const decoder = new TextDecoder('utf-8'); // strips a leading BOM; invalid bytes become U+FFFD

const isBlank = (line: string): boolean => line.trim() === '';

/** Lines of a file with 1-based numbers, streamed; a leading BOM is removed. */
async function* lines(path: string): AsyncGenerator<[string, number]> {
  const fh = await open(path, 'r'); // fails here, with the path, if the file cannot be opened
  const rl = createInterface({ input: fh.createReadStream({ encoding: 'utf8' }), crlfDelay: Infinity });
  try {
    let n = 0;
    for await (let line of rl) {
      if (++n === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
      yield [line, n];
    }
  } finally {
    rl.close();
    await fh.close().catch(() => {});
  }
}

/**
 * Documents of a plain-text file (UTF-8; a BOM is dropped, invalid bytes become U+FFFD).
 * Ids are the path (`'file'`) or `path:line` of the document's first line.
 *
 * @example
 * for await (const doc of readText('corpus.txt', { split: 'paragraph' })) console.log(doc.id);
 */
export async function* readText(path: string, opts: TextOptions = {}): AsyncGenerator<TextDocument> {
  const split = opts.split ?? 'file';
  const source = opts.label ?? path;
  if (split === 'file') {
    yield { id: path, text: decoder.decode(await readFile(path)), source };
    return;
  }
  if (split !== 'line' && split !== 'paragraph') throw new Error(`readText: unknown split mode '${String(split)}' (use 'file', 'line' or 'paragraph')`);
  let para: string[] = [];
  let start = 0;
  for await (const [line, n] of lines(path)) {
    if (split === 'line') {
      if (!isBlank(line)) yield { id: `${path}:${n}`, text: line, source };
    } else if (isBlank(line)) {
      if (para.length) yield { id: `${path}:${start}`, text: para.join('\n'), source };
      para = [];
    } else {
      if (!para.length) start = n;
      para.push(line);
    }
  }
  if (para.length) yield { id: `${path}:${start}`, text: para.join('\n'), source };
}

function extensionFilter(exts: readonly string[] | undefined): (name: string) => boolean {
  if (!exts) return () => true;
  const wanted = exts.map((e) => (e.startsWith('.') ? e : `.${e}`).toLowerCase());
  return (name) => {
    const lower = name.toLowerCase();
    return wanted.some((e) => lower.endsWith(e));
  };
}

// Code-unit order, not locale order: the same on every machine and in every locale.
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The files of a folder, recursively, as paths joined onto `dir`, in a fixed order: depth first,
 * the entries of each folder sorted by UTF-16 code units (so `B.txt` before `a.txt`, and a
 * folder's files together). Symbolic links are followed; a link back into a folder already being
 * walked is skipped, so a cycle cannot loop.
 */
export async function listFiles(dir: string, opts: FolderOptions = {}): Promise<string[]> {
  const keep = extensionFilter(opts.extensions);
  const out: string[] = [];
  const walk = async (path: string, ancestors: Set<string>): Promise<void> => {
    const real = await realpath(path);
    if (ancestors.has(real)) return;
    const inner = new Set(ancestors).add(real);
    const entries = (await readdir(path, { withFileTypes: true })).sort((a, b) => byCodeUnits(a.name, b.name));
    for (const e of entries) {
      if (!opts.includeHidden && e.name.startsWith('.')) continue;
      const child = join(path, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const s = await stat(child).catch(() => null); // a dangling link is skipped
        isDir = s?.isDirectory() ?? false;
        isFile = s?.isFile() ?? false;
      }
      if (isDir) await walk(child, inner);
      else if (isFile && keep(e.name)) out.push(child);
    }
  };
  const s = await stat(dir).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`readFolder: cannot read '${dir}': ${e.code ?? e.message}`);
  });
  if (!s.isDirectory()) throw new Error(`readFolder: '${dir}' is not a folder`);
  await walk(dir, new Set());
  return out;
}

/**
 * Documents of every file under a folder (see {@link listFiles} for which files and their
 * order), each read as {@link readText} reads a file; their `source` is the folder.
 */
export async function* readFolder(dir: string, opts: FolderOptions = {}): AsyncGenerator<TextDocument> {
  const label = opts.label ?? dir;
  for (const file of await listFiles(dir, opts)) yield* readText(file, { split: opts.split ?? 'file', label });
}

/**
 * Documents of a JSONL file: each non-blank line a JSON object whose `field` (default `'text'`)
 * is a string. Blank lines are ignored. A line that is not valid JSON, not an object, or lacks the
 * field (or has a non-string) throws `readJsonl: path:line: reason`, or with `onError: 'skip'` is
 * skipped and reported to `onSkip`.
 *
 * @example
 * const skipped: SourceIssue[] = [];
 * for await (const doc of readJsonl('data.jsonl', { field: 'content', onError: 'skip', onSkip: (i) => skipped.push(i) })) {}
 */
export async function* readJsonl(path: string, opts: JsonlOptions = {}): AsyncGenerator<TextDocument> {
  const field = opts.field ?? 'text';
  const source = opts.label ?? path;
  const mode = opts.onError ?? 'throw';
  if (mode !== 'throw' && mode !== 'skip') throw new Error(`readJsonl: onError must be 'throw' or 'skip', got '${String(mode)}'`);
  for await (const [line, n] of lines(path)) {
    if (isBlank(line)) continue;
    let reason: string | null = null;
    let doc: TextDocument | null = null;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      reason = `invalid JSON (${(e as Error).message})`;
    }
    if (reason === null) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) reason = `not an object (got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value})`;
      else {
        const obj = value as Record<string, unknown>;
        const text = obj[field];
        const idValue = opts.idField === undefined ? undefined : obj[opts.idField];
        if (!(field in obj)) reason = `field '${field}' missing`;
        else if (typeof text !== 'string') reason = `field '${field}' is ${text === null ? 'null' : typeof text}, not a string`;
        else if (opts.idField !== undefined && typeof idValue !== 'string' && typeof idValue !== 'number')
          reason = `id field '${opts.idField}' missing or not a string or number`;
        else doc = { id: idValue === undefined ? `${path}:${n}` : String(idValue), text, source };
      }
    }
    if (doc) yield doc;
    else if (mode === 'throw') throw new Error(`readJsonl: ${path}:${n}: ${reason}`);
    else opts.onSkip?.({ source: path, line: n, reason: reason! });
  }
}

async function* fromMemory(name: string, documents: Iterable<DocumentLike> | AsyncIterable<DocumentLike>): AsyncGenerator<TextDocument> {
  let i = 0;
  for await (const d of documents) {
    if (typeof d === 'string') yield { id: `${name}:${i}`, text: d, source: name };
    else if (d && typeof d.text === 'string') yield { id: d.id ?? `${name}:${i}`, text: d.text, source: d.source ?? name };
    else throw new Error(`readSource: document ${i} of '${name}' has no string 'text'`);
    i++;
  }
}

/** The label a source's documents carry as `source`. */
export function sourceLabel(spec: SourceSpec): string {
  if (typeof spec === 'string') return spec;
  if (spec.type === 'documents') return spec.name ?? 'memory';
  return spec.label ?? spec.path;
}

/** Documents of one source (see {@link SourceSpec}). */
export async function* readSource(spec: SourceSpec, opts: ReadOptions = {}): AsyncGenerator<TextDocument> {
  if (typeof spec === 'string') {
    const s = await stat(spec).catch((e: NodeJS.ErrnoException) => {
      throw new Error(`readSource: cannot read '${spec}': ${e.code ?? e.message}`);
    });
    if (s.isDirectory()) spec = { type: 'folder', path: spec };
    else if (/\.(jsonl|ndjson)$/i.test(spec)) spec = { type: 'jsonl', path: spec };
    else spec = { type: 'text', path: spec };
  }
  switch (spec.type) {
    case 'text':
      yield* readText(spec.path, spec);
      return;
    case 'folder':
      yield* readFolder(spec.path, spec);
      return;
    case 'jsonl': {
      const own = spec.onSkip;
      const onSkip = (issue: SourceIssue): void => {
        own?.(issue);
        opts.onSkip?.(issue);
      };
      yield* readJsonl(spec.path, { ...spec, onError: spec.onError ?? opts.onError ?? 'throw', onSkip });
      return;
    }
    case 'documents':
      yield* fromMemory(spec.name ?? 'memory', spec.documents);
      return;
    default:
      throw new Error(`readSource: unknown source type '${String((spec as { type: unknown }).type)}' (use 'text', 'folder', 'jsonl' or 'documents')`);
  }
}

/** Documents of several sources, one after another. */
export async function* readSources(specs: SourceSpec | readonly SourceSpec[], opts: ReadOptions = {}): AsyncGenerator<TextDocument> {
  for (const spec of Array.isArray(specs) ? (specs as readonly SourceSpec[]) : [specs as SourceSpec]) yield* readSource(spec, opts);
}

/** Every document of the sources, as an array. */
export async function readDocuments(specs: SourceSpec | readonly SourceSpec[], opts: ReadOptions = {}): Promise<TextDocument[]> {
  return collect(readSources(specs, opts));
}

/** The items of a (sync or async) iterable as an array. */
export async function collect<T>(items: Iterable<T> | AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
}
