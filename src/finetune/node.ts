/**
 * Adapter folders on disk, as PEFT writes them: `adapter_model.safetensors` (the adapters'
 * weights under PEFT's names) and `adapter_config.json`, each written atomically.
 * @module
 */
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { Module as ModuleClass, type Module } from '../nn/module.js';
import { show } from '../tensor/validate.js';
import { relabel } from '../tensor/ops/util.js';
import { loadPeftState, peftConfig, peftStateDict, type PeftConfigJSON } from './peft.js';

/** The weights file of an adapter folder. */
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** The config file of an adapter folder. */
export const ADAPTER_CONFIG = 'adapter_config.json';

/** Write `model`'s adapters (LoRA and bottleneck) to the folder `dir` (created if needed). */
export async function saveAdapters(dir: string, model: Module): Promise<void> {
  const op = 'saveAdapters';
  if (typeof dir !== 'string' || dir === '') throw new Error(`${op}: dir must be a folder path, got ${show(dir)}`);
  try {
    const cfg = peftConfig(model);
    const sd = peftStateDict(model);
    await mkdir(dir, { recursive: true });
    await saveSafetensors(join(dir, ADAPTER_WEIGHTS), sd, { format: 'pt' });
    await writeFileAtomic(join(dir, ADAPTER_CONFIG), new TextEncoder().encode(`${JSON.stringify(cfg, null, 2)}\n`));
  } catch (e) {
    throw relabel(op, e);
  }
}

/**
 * Put the adapters saved in `dir` onto `model` (a base model without adapters, as saved): the
 * config decides where they go, the weights are loaded into them; the base stays frozen.
 */
export function loadAdapters(dir: string, model: Module): PeftConfigJSON {
  const op = 'loadAdapters';
  if (typeof dir !== 'string' || dir === '') throw new Error(`${op}: dir must be a folder path, got ${show(dir)}`);
  if (!(model instanceof ModuleClass)) throw new Error(`${op}: model must be a Module, got ${show(model)}`);
  let cfg: PeftConfigJSON;
  const cfgPath = join(dir, ADAPTER_CONFIG);
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as PeftConfigJSON;
  } catch (e) {
    throw new Error(`${op}: cannot read ${cfgPath}: ${(e as Error).message}`);
  }
  const backend = model.parameters()[0]?.backend.name;
  const { tensors } = loadSafetensors(join(dir, ADAPTER_WEIGHTS), backend ? { backend } : {});
  try {
    loadPeftState(model, cfg, tensors);
  } catch (e) {
    throw relabel(op, e);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
  return cfg;
}
