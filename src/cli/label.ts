/**
 * `kiln label`: a preference-labelling page on this machine. For each prompt it shows two
 * completions side by side with three buttons, A better, B better, skip; each choice appends one
 * line `{"prompt", "chosen", "rejected"}` to the output JSONL, the format `parsePreferencePairs`
 * (align/data.ts) reads and `kiln reward` / `kiln align` train on. The completions come from a
 * JSONL file (`{"prompt", "a", "b"}` or `{"prompt", "completions": [a, b]}` per line) or are
 * generated from a `kiln train` checkpoint for each line of a prompts file, with two different seeds.
 *
 * The server ({@link startLabelServer}) listens on 127.0.0.1 only, and serves plain HTML forms
 * (no script): a choice is a POST carrying the item's index and a token made per server, so a
 * page from elsewhere cannot post choices. Each line is appended with one `appendFile` (O_APPEND):
 * a crash leaves whole lines; a restart skips the items already in the output file.
 * @module
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { appendFile, open, readFile, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { generate } from '../nn/generate.js';
import { tensor } from '../tensor/ops/creation.js';
import { Generator } from '../tensor/random.js';
import { UsageError, type CommandSpec, type ParsedArgs } from './args.js';
import { escapeHtml } from './report.js';
import { loadTrained, resolveCheckpoint, type TrainedModel } from './sample.js';
import { EOT, MAX_SAMPLE_TOKENS, backendOption, checkOutFile, fsReason, makeFolder, selectBackend, type CommandIO } from './train.js';

/** The declaration of `kiln label`. */
export const labelSpec: CommandSpec = {
  name: 'label',
  summary: 'label preference pairs in a browser page (A better / B better / skip), appending JSONL for kiln reward',
  usage: ['label --pairs IN.jsonl --out OUT.jsonl [--port N]', 'label --ckpt DIR --prompts FILE --out OUT.jsonl [--tokens N] [--temperature T] [--port N]'],
  options: [
    { name: 'pairs', type: 'string', placeholder: 'IN.jsonl', help: 'prompts with two completions: {"prompt", "a", "b"} or {"prompt", "completions": [a, b]} per line' },
    { name: 'ckpt', type: 'string', placeholder: 'DIR|FILE', help: 'generate the two completions from this kiln train model (seeds 2i and 2i + 1)' },
    { name: 'prompts', type: 'string', placeholder: 'FILE', help: 'with --ckpt: one prompt per line, or JSONL with a "prompt" field' },
    { name: 'out', type: 'string', short: 'o', placeholder: 'OUT.jsonl', help: 'where choices are appended as {"prompt", "chosen", "rejected"}' },
    { name: 'port', type: 'int', min: 0, max: 65535, help: 'the port on 127.0.0.1 (0: any free one)', defaultText: '8377' },
    { name: 'tokens', type: 'int', min: 1, max: MAX_SAMPLE_TOKENS, help: 'with --ckpt: tokens per completion', defaultText: '60' },
    { name: 'temperature', type: 'number', placeholder: 'T', above: 0, max: 100, help: 'with --ckpt: softmax temperature', defaultText: '0.9' },
    backendOption,
  ],
  notes: ['The page serves on 127.0.0.1 only. It stops by itself once every item is labelled or skipped, or with Ctrl-C; run it again to continue (items already in --out are skipped).'],
};

/** One item to label: a prompt and two completions. */
export interface LabelItem {
  prompt: string;
  a: string;
  b: string;
}

/** A choice made on the page. */
export interface LabelChoice {
  index: number;
  choice: 'a' | 'b' | 'skip';
}

/** Options of {@link startLabelServer}. */
export interface LabelServerOptions {
  items: readonly LabelItem[];
  /** The JSONL file choices are appended to. */
  out: string;
  /** The port on 127.0.0.1 (0, the default: any free one). */
  port?: number;
  /** Called after each choice is recorded (and written). */
  onChoice?: (c: LabelChoice & { written: boolean }) => void;
}

/** A running labelling server. */
export interface LabelServer {
  /** `http://127.0.0.1:PORT/`. */
  url: string;
  port: number;
  /** Resolves when every item is labelled or skipped. */
  finished: Promise<{ labelled: number; skipped: number }>;
  close(): Promise<void>;
}

const OP = 'startLabelServer';
const MAX_BODY = 64 * 1024;

const key = (prompt: string, x: string, y: string): string => JSON.stringify([prompt, ...[x, y].sort()]);

// items already written to `out` by an earlier session (lines that do not parse are left to the reader to report)
async function alreadyLabelled(out: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(out, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw new Error(`${OP}: cannot read '${out}': ${fsReason(e)}`);
  }
  const done = new Set<string>();
  for (const line of text.split('\n')) {
    try {
      const r = JSON.parse(line) as { prompt?: unknown; chosen?: unknown; rejected?: unknown };
      if (typeof r.prompt === 'string' && typeof r.chosen === 'string' && typeof r.rejected === 'string') done.add(key(r.prompt, r.chosen, r.rejected));
    } catch {
      // not a pair
    }
  }
  return done;
}

function page(items: readonly LabelItem[], index: number, token: string, state: { labelled: number; skipped: number }, message = ''): string {
  const head = `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>kiln label</title><style>
body { font-family: system-ui, Helvetica, Arial, sans-serif; margin: 1.5rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
.prompt { background: #f4f4f4; padding: 0.6rem; white-space: pre-wrap; border-radius: 4px; }
.pair { display: flex; gap: 1rem; margin-top: 1rem; }
.pair > div { flex: 1; border: 1px solid #ccc; border-radius: 4px; padding: 0.6rem; }
.pair pre { white-space: pre-wrap; word-wrap: break-word; font-size: 0.9rem; }
.buttons { margin-top: 1rem; display: flex; gap: 0.6rem; }
button { font-size: 1rem; padding: 0.4rem 1.2rem; }
.note { color: #a33; }
</style></head><body><h1>kiln label</h1>`;
  const progress = `<p>${state.labelled} labelled, ${state.skipped} skipped, ${items.length - state.labelled - state.skipped} to go (of ${items.length}).</p>`;
  const note = message ? `<p class="note">${escapeHtml(message)}</p>` : '';
  if (index < 0) return `${head}${progress}${note}<p id="done">All items are done: the pairs are in the output file. You can close this page.</p></body></html>\n`;
  const it = items[index]!;
  const same = it.a === it.b;
  return `${head}${progress}${note}
<h2>Prompt ${index + 1}</h2><div class="prompt">${escapeHtml(it.prompt)}</div>
<div class="pair"><div><h3>A</h3><pre id="a">${escapeHtml(it.a)}</pre></div><div><h3>B</h3><pre id="b">${escapeHtml(it.b)}</pre></div></div>
<form method="post" action="/choose" class="buttons">
<input type="hidden" name="index" value="${index}"><input type="hidden" name="token" value="${token}">
<button type="submit" name="choice" value="a"${same ? ' disabled' : ''}>A better</button>
<button type="submit" name="choice" value="b"${same ? ' disabled' : ''}>B better</button>
<button type="submit" name="choice" value="skip">skip</button>
</form>${same ? '<p class="note">The two completions are the same: skip this one.</p>' : ''}
</body></html>\n`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((done, fail) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        fail(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => done(Buffer.concat(chunks).toString('utf8')));
    req.on('error', fail);
  });
}

function checkItems(items: unknown): readonly LabelItem[] {
  if (!Array.isArray(items) || items.length === 0) throw new Error(`${OP}: items must be a non-empty array of {prompt, a, b}, got ${Array.isArray(items) ? 'an empty array' : String(items)}`);
  items.forEach((it, i) => {
    const r = it as Record<string, unknown> | null;
    if (r === null || typeof r !== 'object') throw new Error(`${OP}: items[${i}] must be {prompt, a, b}, got ${String(r)}`);
    for (const k of ['prompt', 'a', 'b']) if (typeof r[k] !== 'string') throw new Error(`${OP}: items[${i}].${k} must be a string, got ${r[k] === undefined ? 'nothing' : typeof r[k]}`);
  });
  return items as LabelItem[];
}

/**
 * Serve the labelling page for `items` on 127.0.0.1, appending each A/B choice to `out` as
 * `{"prompt", "chosen", "rejected"}`; items already in `out` are not shown again.
 *
 * @example
 * const server = await startLabelServer({ items: [{ prompt: 'Hi', a: 'Hello!', b: 'Go away.' }], out: 'prefs.jsonl' });
 * console.log(server.url); // open it in a browser
 * await server.finished;
 * await server.close();
 */
export async function startLabelServer(opts: LabelServerOptions): Promise<LabelServer> {
  if (opts === null || typeof opts !== 'object') throw new Error(`${OP}: options must be an object, got ${String(opts)}`);
  for (const k of Object.keys(opts)) if (!['items', 'out', 'port', 'onChoice'].includes(k)) throw new Error(`${OP}: unknown option '${k}' (options: items, out, port, onChoice)`);
  const items = checkItems(opts.items);
  if (typeof opts.out !== 'string' || opts.out === '') throw new Error(`${OP}: out must be a file path, got ${String(opts.out)}`);
  const port = opts.port ?? 0;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${OP}: port must be an integer in [0, 65535], got ${String(port)}`);
  if (opts.onChoice !== undefined && typeof opts.onChoice !== 'function') throw new Error(`${OP}: onChoice must be a function, got ${typeof opts.onChoice}`);
  const out = resolve(opts.out);
  const before = await alreadyLabelled(out);
  // 'pending' | 'labelled' | 'skipped' per item; those in `out` already count as labelled
  const status: ('pending' | 'labelled' | 'skipped')[] = items.map((it) => (before.has(key(it.prompt, it.a, it.b)) ? 'labelled' : 'pending'));
  const token = randomBytes(16).toString('hex');
  const counts = (): { labelled: number; skipped: number } => ({ labelled: status.filter((s) => s === 'labelled').length, skipped: status.filter((s) => s === 'skipped').length });
  const next = (): number => status.indexOf('pending');
  let finish!: (v: { labelled: number; skipped: number }) => void;
  const finished = new Promise<{ labelled: number; skipped: number }>((r) => (finish = r));
  if (next() < 0) finish(counts());
  let writing = Promise.resolve();

  const send = (res: ServerResponse, code: number, body: string, type = 'text/html; charset=utf-8'): void => {
    res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'" });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/') return send(res, 200, page(items, next(), token, counts()));
    if (req.method === 'GET' && path === '/state') return send(res, 200, `${JSON.stringify({ ...counts(), total: items.length, next: next() })}\n`, 'application/json');
    if (req.method === 'POST' && path === '/choose') {
      let form: URLSearchParams;
      try {
        form = new URLSearchParams(await readBody(req));
      } catch {
        return send(res, 413, 'the form is too large\n', 'text/plain');
      }
      if (form.get('token') !== token) return send(res, 403, 'this form is not from this server (reload the page)\n', 'text/plain');
      const index = Number(form.get('index'));
      const choice = form.get('choice');
      if (!Number.isInteger(index) || index < 0 || index >= items.length) return send(res, 400, `no item ${String(form.get('index'))}\n`, 'text/plain');
      if (choice !== 'a' && choice !== 'b' && choice !== 'skip') return send(res, 400, `choice must be a, b or skip, got ${String(choice)}\n`, 'text/plain');
      const it = items[index]!;
      if (status[index] !== 'pending') return send(res, 409, page(items, next(), token, counts(), `prompt ${index + 1} was already ${status[index]}`));
      if (choice !== 'skip' && it.a === it.b) return send(res, 400, page(items, next(), token, counts(), 'the two completions are the same: only skip applies'));
      let written = false;
      if (choice !== 'skip') {
        const pair = { prompt: it.prompt, chosen: choice === 'a' ? it.a : it.b, rejected: choice === 'a' ? it.b : it.a };
        // one append per line, in order: whole lines whatever happens
        const w = writing.then(() => appendFile(out, `${JSON.stringify(pair)}\n`, 'utf8'));
        writing = w.catch(() => {});
        try {
          await w;
        } catch (e) {
          return send(res, 500, page(items, next(), token, counts(), `cannot write ${out}: ${fsReason(e)}`));
        }
        written = true;
      }
      status[index] = choice === 'skip' ? 'skipped' : 'labelled';
      opts.onChoice?.({ index, choice, written });
      if (next() < 0) finish(counts());
      res.writeHead(303, { location: '/' });
      res.end();
      return;
    }
    send(res, 404, 'not found\n', 'text/plain');
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e) => send(res, 500, `${(e as Error).message}\n`, 'text/plain'));
  });
  await new Promise<void>((done, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => fail(new Error(`${OP}: cannot listen on 127.0.0.1:${port}: ${portReason(e)}`)));
    server.listen(port, '127.0.0.1', () => done());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}/`,
    port: actual,
    finished,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections?.();
        server.close(() => done());
      }),
  };
}

// ---- the items: from a pairs file, or generated ------------------------------------------------

/** Items from JSONL text: `{"prompt", "a", "b"}` or `{"prompt", "completions": [a, b]}` per line; errors name source:line. */
export function parseLabelItems(text: string, source: string): LabelItem[] {
  const items: LabelItem[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const where = `${source}:${i + 1}`;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${where}: not JSON (${(e as Error).message})`);
    }
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new Error(`${where}: expected a JSON object`);
    const c = Array.isArray(r.completions) ? r.completions : [r.a, r.b];
    if (c.length !== 2) throw new Error(`${where}: 'completions' must hold two completions, got ${c.length}`);
    if (typeof r.prompt !== 'string') throw new Error(`${where}: 'prompt' must be a string`);
    if (typeof c[0] !== 'string' || typeof c[1] !== 'string') throw new Error(`${where}: expected two completions as strings ('a' and 'b', or 'completions': [a, b])`);
    items.push({ prompt: r.prompt, a: c[0], b: c[1] });
  });
  if (!items.length) throw new Error(`${source}: no items (every line is blank)`);
  return items;
}

/** Prompts from a file: JSONL with a "prompt" field, or one prompt per non-blank line. */
function parsePrompts(text: string, source: string): string[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const json = /\.(jsonl|ndjson)$/i.test(source);
  const prompts = lines.map((l, i) => {
    if (!json) return l;
    try {
      const r = JSON.parse(l) as { prompt?: unknown };
      if (typeof r.prompt !== 'string') throw new Error("no 'prompt' string");
      return r.prompt;
    } catch (e) {
      throw new Error(`${source}:${i + 1}: ${(e as Error).message}`);
    }
  });
  if (!prompts.length) throw new Error(`${source}: no prompts (every line is blank)`);
  return prompts;
}

async function complete(t: TrainedModel, prompt: string, seed: number, tokens: number, temperature: number, backend: string): Promise<string> {
  const eos = t.tokenizer.specialTokens.get(EOT) ?? 0;
  const ids = prompt ? t.tokenizer.encode(prompt) : [eos];
  const context = (ids.length ? ids : [eos]).slice(-t.config.blockSize);
  const idx = tensor(Int32Array.from(context), [1, context.length], { backend, dtype: 'i32' });
  const outIds = await generate(t.model, idx, { maxNewTokens: tokens, temperature, topK: 40, generator: new Generator(seed) });
  const text = t.tokenizer.decode(Array.from(await outIds.data()).slice(context.length));
  idx.dispose();
  outIds.dispose();
  return text;
}

// a FIFO or a device would block readFileSync (and the whole process) or never end it
function readText(path: string, flag: string): string {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new Error(`${flag}: cannot read '${path}': ${fsReason(e)}`);
  }
  if (st.isDirectory()) throw new Error(`${flag}: '${path}' is a folder, not a file`);
  if (!st.isFile()) throw new Error(`${flag}: '${path}' is not a regular file`);
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${flag}: cannot read '${path}': ${fsReason(e)}`);
  }
}

// a message of the parsers (`in.jsonl:3: not JSON`) with the flag it came from in front
function withFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    const message = (e as Error).message;
    throw message.startsWith(`${flag}: `) ? e : new Error(`${flag}: ${message}`);
  }
}

/**
 * Check `--out` before any work: a regular file whose lines are all preference pairs (an earlier
 * session's), or a path that can be made. A file of other lines is refused: appending to it would
 * corrupt it (the usual cause is `--out` naming the input).
 */
function checkLabelOut(raw: string, out: string): void {
  if (!checkOutFile(out, '--out')) return;
  const lines = readText(out, '--out').split('\n');
  const bad = lines.findIndex((l) => l.trim() !== '' && !isPairLine(l));
  if (bad >= 0)
    throw new Error(`--out: line ${bad + 1} of '${raw}' is not a {"prompt", "chosen", "rejected"} pair; give a new file, or one kiln label wrote (not the input)`);
}

function isPairLine(line: string): boolean {
  try {
    const r = JSON.parse(line) as { prompt?: unknown; chosen?: unknown; rejected?: unknown } | null;
    return r !== null && typeof r === 'object' && typeof r.prompt === 'string' && typeof r.chosen === 'string' && typeof r.rejected === 'string';
  } catch {
    return false;
  }
}

// open `out` for appending once (then leave things as they were), so a file that cannot be written fails now, not at the first choice
async function probeWrite(raw: string, out: string): Promise<void> {
  const existed = existsSync(out);
  try {
    await (await open(out, 'a')).close();
  } catch (e) {
    throw new Error(`--out: cannot write '${raw}': ${fsReason(e)}`);
  }
  if (!existed) await rm(out, { force: true });
}

// bind the port once before the completions are generated, so a port in use fails before minutes of work
async function probePort(port: number): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await new Promise<void>((done, fail) => {
    probe.once('error', (e: NodeJS.ErrnoException) => fail(new Error(`--port ${port}: cannot listen on 127.0.0.1:${port}: ${portReason(e)}`)));
    probe.listen(port, '127.0.0.1', () => done());
  });
  await new Promise<void>((done) => probe.close(() => done()));
}

const portReason = (e: NodeJS.ErrnoException): string =>
  e.code === 'EADDRINUSE' ? 'the port is in use (pick another --port, or 0 for any free one)' : e.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges; pick another --port)' : e.message;

/** Run `kiln label`; returns the exit status once every item is done (or 130 on Ctrl-C). */
export async function labelCommand(args: ParsedArgs, io: CommandIO): Promise<number> {
  const fromPairs = args.pairs !== undefined;
  if (fromPairs === (args.ckpt !== undefined)) throw new UsageError('give either --pairs IN.jsonl, or --ckpt DIR with --prompts FILE');
  if (args.ckpt !== undefined && args.prompts === undefined) throw new UsageError('--ckpt needs --prompts FILE (the prompts to complete)');
  if (fromPairs) for (const k of ['prompts', 'tokens', 'temperature', 'backend']) if (args[k] !== undefined) throw new UsageError(`--${k} applies with --ckpt, not --pairs`);
  if (args.out === undefined) throw new UsageError('--out is required (the JSONL file the pairs are appended to)');
  const rawOut = String(args.out);
  const out = resolve(rawOut);
  checkLabelOut(rawOut, out);
  const port = (args.port as number | undefined) ?? 8377;
  const pairsPath = String(args.pairs);
  const promptsPath = String(args.prompts);
  let items: LabelItem[] = fromPairs ? withFlag('--pairs', () => parseLabelItems(readText(pairsPath, '--pairs'), pairsPath)) : [];
  const prompts = fromPairs ? [] : withFlag('--prompts', () => parsePrompts(readText(promptsPath, '--prompts'), promptsPath));
  if (!fromPairs) await resolveCheckpoint(String(args.ckpt)); // bad paths fail before the backend loads
  await probePort(port);
  await makeFolder(dirname(out));
  await probeWrite(rawOut, out);
  if (!fromPairs) {
    const backend = await selectBackend(args.backend === undefined ? undefined : String(args.backend));
    const t = await loadTrained(String(args.ckpt), backend);
    const tokens = (args.tokens as number | undefined) ?? 60;
    const temperature = (args.temperature as number | undefined) ?? 0.9;
    items = [];
    for (let i = 0; i < prompts.length; i++) {
      const p = prompts[i]!;
      items.push({ prompt: p, a: await complete(t, p, 2 * i, tokens, temperature, backend), b: await complete(t, p, 2 * i + 1, tokens, temperature, backend) });
    }
    io.stderr.write(`kiln label: generated two completions for each of ${prompts.length} prompt(s) from ${t.file}\n`);
  }
  let server: LabelServer;
  try {
    server = await startLabelServer({ items, out, port, onChoice: (c) => io.stderr.write(`prompt ${c.index + 1}: ${c.choice === 'skip' ? 'skipped' : `${c.choice.toUpperCase()} better`}\n`) });
  } catch (e) {
    // taken between the probe and now
    throw new Error((e as Error).message.replace(new RegExp(`^${OP}: (?=cannot listen)`), `--port ${port}: `));
  }
  io.stderr.write(`kiln label: open ${server.url} (127.0.0.1 only); pairs go to ${out}; Ctrl-C stops\n`);
  let result: { labelled: number; skipped: number } | null = null;
  const stop = new Promise<void>((done) => {
    const on = (): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      done();
    };
    process.once('SIGINT', on);
    process.once('SIGTERM', on);
    void server.finished.then(async (c) => {
      result = c;
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      await new Promise((r) => setTimeout(r, 500)); // the browser's last page (after the redirect) is served before the server closes
      done();
    });
  });
  await stop;
  await server.close();
  const c = result as { labelled: number; skipped: number } | null;
  io.stdout.write(c ? `kiln label: done: ${c.labelled} labelled, ${c.skipped} skipped; pairs in ${out}\n` : `kiln label: stopped; pairs so far in ${out} (run again to continue)\n`);
  return c ? 0 : 130;
}
