/**
 * Reading documents: plain-text files (a whole file, one document per line, or one per
 * paragraph), folders of text files (recursive, in a fixed order), JSONL files (one JSON object
 * per line, the text in a named field) and documents already in memory.
 *
 * Every reader is an async iterable, so a corpus larger than memory streams through cleaning and
 * tokenisation; {@link readDocuments} collects one into an array when it fits.
 * @module
 */
import { got, pathArg } from './args.js';
import {
  checkSource,
  checkSources,
  filesOf,
  folderDocuments,
  folderOptions,
  jsonlDocuments,
  jsonlOptions,
  readOptions,
  sourceDocuments,
  sourcesDocuments,
  textDocuments,
  textOptions,
} from './read.js';

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

/**
 * Documents of a plain-text file (UTF-8; a BOM is dropped, invalid bytes become U+FFFD).
 * Ids are the path (`'file'`) or `path:line` of the document's first line.
 *
 * @example
 * for await (const doc of readText('corpus.txt', { split: 'paragraph' })) console.log(doc.id);
 */
export async function* readText(path: string, opts: TextOptions = {}): AsyncGenerator<TextDocument> {
  const op = 'readText';
  pathArg(op, path);
  yield* textDocuments(op, path, textOptions(op, opts));
}

/**
 * The files of a folder, recursively, as paths joined onto `dir`, in a fixed order: depth first,
 * the entries of each folder sorted by UTF-16 code units (so `B.txt` before `a.txt`, and a
 * folder's files together). Symbolic links are followed; a link back into a folder already being
 * walked is skipped, so a cycle cannot loop.
 */
export async function listFiles(dir: string, opts: FolderOptions = {}): Promise<string[]> {
  const op = 'listFiles';
  pathArg(op, dir, 'dir');
  return filesOf(op, dir, folderOptions(op, opts));
}

/**
 * Documents of every file under a folder (see {@link listFiles} for which files and their
 * order), each read as {@link readText} reads a file; their `source` is the folder.
 */
export async function* readFolder(dir: string, opts: FolderOptions = {}): AsyncGenerator<TextDocument> {
  const op = 'readFolder';
  pathArg(op, dir, 'dir');
  yield* folderDocuments(op, dir, folderOptions(op, opts));
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
  const op = 'readJsonl';
  pathArg(op, path);
  yield* jsonlDocuments(op, path, jsonlOptions(op, opts));
}

/** The label a source's documents carry as `source`. */
export function sourceLabel(spec: SourceSpec): string {
  checkSource('sourceLabel', spec);
  if (typeof spec === 'string') return spec;
  if (spec.type === 'documents') return spec.name ?? 'memory';
  return spec.label ?? spec.path;
}

/** Documents of one source (see {@link SourceSpec}). */
export async function* readSource(spec: SourceSpec, opts: ReadOptions = {}): AsyncGenerator<TextDocument> {
  const op = 'readSource';
  yield* sourceDocuments(op, checkSource(op, spec), readOptions(op, opts));
}

/** Documents of several sources, one after another. */
export async function* readSources(specs: SourceSpec | readonly SourceSpec[], opts: ReadOptions = {}): AsyncGenerator<TextDocument> {
  const op = 'readSources';
  yield* sourcesDocuments(op, checkSources(op, specs), readOptions(op, opts));
}

/** Every document of the sources, as an array. */
export async function readDocuments(specs: SourceSpec | readonly SourceSpec[], opts: ReadOptions = {}): Promise<TextDocument[]> {
  const op = 'readDocuments';
  return collect(sourcesDocuments(op, checkSources(op, specs), readOptions(op, opts)));
}

/** The items of a (sync or async) iterable as an array. */
export async function collect<T>(items: Iterable<T> | AsyncIterable<T>): Promise<T[]> {
  if (items === null || (typeof items !== 'object' && typeof items !== 'string') || (typeof (items as Iterable<T>)[Symbol.iterator] !== 'function' && typeof (items as AsyncIterable<T>)[Symbol.asyncIterator] !== 'function'))
    throw new Error(`collect: items must be an iterable or an async iterable, got ${got(items)}`);
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
}
