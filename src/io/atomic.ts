/**
 * Atomic file writes: write a temporary file in the target's directory, fsync it, rename it
 * over the target, and fsync the directory. A crash at any point leaves either the old file or
 * the new one, never a mix; a failed write removes its temporary file.
 * @module
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { checkKeys, show } from '../tensor/validate.js';

/** Writes `data` to an open file; replace it to observe or break writes (tests inject failures). */
export type AsyncWriter = (file: FileHandle, data: Uint8Array) => Promise<void>;
/** The synchronous {@link AsyncWriter}, over a file descriptor. */
export type SyncWriter = (fd: number, data: Uint8Array) => void;

let counter = 0;

/** The temporary name a write to `path` uses: hidden, in the same directory, unique per process and call. */
export function tempPathFor(path: string): string {
  const full = resolve(path);
  return join(dirname(full), `.${basename(full)}.${process.pid}.${++counter}.tmp`);
}

function writeAllSync(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done);
}

// Directories cannot be fsynced on every platform (Windows); there the rename is what we have.
const DIR_SYNC_UNSUPPORTED = new Set(['EISDIR', 'EINVAL', 'EPERM', 'EBADF', 'EACCES', 'ENOTSUP']);

function syncDirSync(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (e) {
    if (!DIR_SYNC_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | null = null;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (e) {
    if (!DIR_SYNC_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    await fh?.close();
  }
}

/**
 * Replace `path` with `data` atomically (temporary file, fsync, rename, fsync of the directory).
 * The directory must exist. On any error the temporary file is removed and `path` is untouched.
 */
export async function writeFileAtomic(path: string, data: Uint8Array, opts: { write?: AsyncWriter } = {}): Promise<void> {
  const op = 'writeFileAtomic';
  const write = checkWrite(op, path, data, opts) as AsyncWriter | undefined;
  const tmp = tempPathFor(path);
  try {
    await writeVia(tmp, path, data, write);
  } catch (e) {
    throw named(op, e, tmp, path);
  }
}

// The arguments of a write, checked for `op`; the writer option.
function checkWrite(op: string, path: unknown, data: unknown, opts: unknown): unknown {
  if (typeof path !== 'string' || path === '') throw new Error(`${op}: path must be a file path (a non-empty string), got ${show(path)}`);
  if (path.includes('\0')) throw new Error(`${op}: path ${show(path.replace(/\0/g, '\\0'))} contains a NUL character`);
  if (!(data instanceof Uint8Array)) throw new Error(`${op}: data must be a Uint8Array, got ${show(data)}`);
  checkKeys(op, opts, ['write']);
  const write = (opts as { write?: unknown } | null | undefined)?.write;
  if (write !== undefined && typeof write !== 'function') throw new Error(`${op}: write must be a function, got ${show(write)}`);
  return write;
}

async function writeVia(tmp: string, path: string, data: Uint8Array, write: AsyncWriter | undefined): Promise<void> {
  const fh = await open(tmp, 'wx', 0o644);
  try {
    if (write) await write(fh, data);
    else await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(resolve(path)));
}

/** {@link writeFileAtomic}, synchronously. */
export function writeFileAtomicSync(path: string, data: Uint8Array, opts: { write?: SyncWriter } = {}): void {
  const op = 'writeFileAtomicSync';
  const write = checkWrite(op, path, data, opts) as SyncWriter | undefined;
  const tmp = tempPathFor(path);
  try {
    writeViaSync(tmp, path, data, write ?? writeAllSync);
  } catch (e) {
    throw named(op, e, tmp, path);
  }
}

// An error of a write through `tmp` as the caller sees it: about `path`, the file it asked for
// (the hidden temporary name means nothing to them), named by the public function `op`.
function named(op: string, e: unknown, tmp: string, path: string): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  err.message = `${op}: cannot write '${path}': ${err.message.split(tmp).join(path)}`;
  return err;
}

function writeViaSync(tmp: string, path: string, data: Uint8Array, write: SyncWriter): void {
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    write(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDirSync(dirname(resolve(path)));
}
