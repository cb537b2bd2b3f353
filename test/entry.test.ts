/**
 * The entry points: the browser-safe core (`kilnjs/core`) reaches no `node:` module through its
 * import graph, and the Node entry adds the native backend, files, data and the training loop on
 * top of everything the core exports.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as core from '../src/core.js';
import * as node from '../src/index.js';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

// Every module reachable from `entry` through static and dynamic imports, with what each imports.
function importGraph(entry: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const stack = [entry];
  while (stack.length) {
    const file = stack.pop()!;
    if (graph.has(file)) continue;
    const text = readFileSync(file, 'utf8');
    const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)|(?:^|\n)\s*import\s+'([^']+)'/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
    graph.set(file, specs);
    for (const s of specs) if (s.startsWith('.')) stack.push(join(dirname(file), s).replace(/\.js$/, '.ts'));
  }
  return graph;
}

describe('entry points', () => {
  it('the core entry imports no node: module, directly or through any module it reaches', () => {
    const graph = importGraph(join(SRC, 'core.ts'));
    const offenders = [...graph].flatMap(([file, specs]) => specs.filter((s) => s.startsWith('node:') || !s.startsWith('.')).map((s) => `${file.slice(SRC.length + 1)} imports ${s}`));
    expect(offenders).toEqual([]);
    // it is the core: tensors, autograd, nn, optim, metrics, tokenizers
    for (const f of ['tensor/tensor.ts', 'autograd/backward.ts', 'nn/gpt.ts', 'optim/adam.ts', 'metrics/bleu.ts', 'data/bpe.ts', 'data/wordpiece.ts'])
      expect(graph.has(join(SRC, f)), f).toBe(true);
    // and not the Node-only parts
    for (const f of ['backend/cpu/cpu.ts', 'io/checkpoint.ts', 'train/loop.ts', 'data/shards.ts', 'cli/main.ts']) expect(graph.has(join(SRC, f)), f).toBe(false);
  });

  it('the Node entry exports everything the core does, plus the cpu backend, files, data and the loop', () => {
    for (const name of Object.keys(core)) expect(node, name).toHaveProperty(name);
    for (const name of ['CpuBackend', 'setNumThreads', 'saveCheckpoint', 'loadHFGPT2', 'buildShards', 'TokenDataset', 'train', 'evaluate']) {
      expect(node, name).toHaveProperty(name);
      expect(core, name).not.toHaveProperty(name);
    }
  });

  it('without the Node entry, a path where the core needs a file is an error naming the call and the alternative', async () => {
    // the core's host-file hook, uninstalled, as it is in a browser
    const { hostFiles } = await import('../src/host.js');
    const { installHostFiles } = core;
    const saved = hostFiles('test', '');
    installHostFiles(null);
    try {
      expect(() => core.BPETokenizer.load('tok.json')).toThrow(/^BPETokenizer.load: cannot read tok.json: BPETokenizer.load: reading and writing files needs kiln's Node entry point/);
      expect(() => core.loadSafetensors('m.safetensors')).toThrow(/cannot read 'm.safetensors': loadSafetensors: reading and writing files needs kiln's Node entry point \('kilnjs' in Node\); here pass the file's bytes/);
    } finally {
      installHostFiles(saved);
    }
  });
});
