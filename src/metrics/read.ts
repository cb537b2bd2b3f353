/**
 * Reading tensors that metrics are given. Metrics compute on the host, so a tensor argument must
 * be read: at once where the backend's memory is host-visible (`ref`, `cpu`); a tensor on a GPU
 * backend must be read by the caller first (`Array.from(await t.data())`), which makes the sync
 * visible where it happens.
 * @module
 */
import type { DataArray } from '../backend/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

/** The values of `t` for metric `op`, or an Error naming `what` and the way to pass it. */
export function hostValues(op: string, what: string, t: Tensor): DataArray {
  if (t.disposed) throw new Error(`${op}: ${what} is a disposed tensor`);
  if (!t.backend.readSync)
    throw new Error(`${op}: ${what} is on backend '${t.backend.name}', which cannot be read synchronously; pass Array.from(await t.data()) instead`);
  return t.dataSync();
}
