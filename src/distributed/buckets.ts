/**
 * Gradient buckets, shared by data parallelism and ZeRO: the parameters that train, in reverse
 * order (the order the backward pass finishes their gradients), cut into flat buffers of a few
 * MB of one dtype. A post-accumulate-grad hook on each parameter copies its finished gradient
 * into its bucket's buffer; when the last one arrives the bucket is handed to `onReady` (which
 * starts its collective), while the backward pass goes on with the layers before it.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { itemSize, type DType } from '../backend/dtype.js';
import { keep, tidy } from '../tensor/memory.js';
import { stridesOf } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

/** One flat buffer of gradients and where each parameter's lie in it. */
export interface Bucket {
  readonly params: readonly Tensor[];
  /** Element offset of each parameter's gradient in `flat`. */
  readonly offsets: readonly number[];
  /** The buffer: f32 (f64 for f64 parameters), `total` elements (ZeRO pads it). */
  flat: Tensor;
  /** Elements of real gradients (the rest is padding). */
  readonly used: number;
  /** Parameters whose gradient for the current backward has been copied in. */
  readonly ready: Set<Tensor>;
  /** Started: its collective was launched for the gradients it holds now. */
  launched: boolean;
}

// the dtype gradients are reduced in: f64 for f64 parameters, else f32 (halves sum in f32)
function reduceDtype(p: Tensor): DType {
  return p.dtype === 'f64' ? 'f64' : 'f32';
}

/** Copy `n` elements between two contiguous tensors of one dtype and backend, at element offsets. */
export function copyRange(src: Tensor, srcOffset: number, dst: Tensor, dstOffset: number, n: number): void {
  if (n === 0) return;
  dst.backend.copy({
    src: src._storage('copy_'),
    srcOffset,
    srcStrides: stridesOf([n]),
    dst: dst._storage('copy_'),
    dstOffset,
    dstStrides: stridesOf([n]),
    shape: [n],
  });
  dst._bumpVersion();
}

/**
 * Cut `params` (reverse order, of one backend) into buckets of at most `bucketBytes` of one
 * dtype; `pad(n)` gives each bucket's buffer length for `n` elements of gradients.
 */
export function makeBuckets(params: readonly Tensor[], bucketBytes: number, pad: (n: number) => number = (n) => n): Bucket[] {
  const out: Bucket[] = [];
  let group: Tensor[] = [];
  let bytes = 0;
  const close = (): void => {
    if (group.length === 0) return;
    const offsets: number[] = [];
    let n = 0;
    for (const p of group) {
      offsets.push(n);
      n += p.size;
    }
    const flat = keep(Tensor._empty(group[0]!.backend, [pad(n)], reduceDtype(group[0]!), 'DistributedDataParallel'));
    noGrad(() => flat.copy_(0));
    out.push({ params: group, offsets, flat, used: n, ready: new Set(), launched: false });
    group = [];
    bytes = 0;
  };
  for (const p of [...params].reverse()) {
    const size = p.size * itemSize(reduceDtype(p));
    if (group.length && (reduceDtype(group[0]!) !== reduceDtype(p) || bytes + size > bucketBytes)) close();
    group.push(p);
    bytes += size;
  }
  close();
  return out;
}

/** Copy parameter `i` of `b`'s gradient into the bucket's buffer (zeros where it has none). */
export function fillSlot(b: Bucket, i: number): void {
  const p = b.params[i]!;
  const at = b.offsets[i]!;
  const g = p.grad;
  noGrad(() =>
    tidy(() => {
      if (!g) {
        const zero = Tensor._empty(b.flat.backend, [p.size], b.flat.dtype);
        zero.copy_(0);
        copyRange(zero, 0, b.flat, at, p.size);
      } else copyRange(g.dtype === b.flat.dtype ? g : g.cast(b.flat.dtype), 0, b.flat, at, p.size);
    }),
  );
  b.ready.add(p);
}

/** Write the bucket's (reduced) values back into each parameter's `.grad` (made where missing). */
export function unpackGrads(b: Bucket, source: Tensor = b.flat, base = 0): void {
  b.params.forEach((p, i) =>
    noGrad(() =>
      tidy(() => {
        if (!p.grad) p.grad = keep(Tensor._empty(p.backend, p.shape, p.dtype, 'DistributedDataParallel'));
        if (p.grad.dtype === source.dtype) copyRange(source, base + b.offsets[i]!, p.grad, 0, p.size);
        else {
          const tmp = Tensor._empty(source.backend, [p.size], source.dtype);
          copyRange(source, base + b.offsets[i]!, tmp, 0, p.size);
          p.grad.copy_(tmp.reshape([...p.shape]).cast(p.dtype));
        }
      }),
    ),
  );
}
