// Bindings of the CPU kernel table: one per Backend kernel, arguments in the order
// src/backend/cpu/cpu.ts passes them (storages as ArrayBuffers, dtypes as codes).
#include "binding.h"

namespace {

using namespace kiln;

template <typename F>
F need(const Napi::CallbackInfo& info, F f, const char* name) {
  if (!f) throw bind::error(info, std::string("kernel '") + name + "' is not in this build (ISA " + kernels().isa + ")");
  return f;
}

#define K(name) need(info, kernels().name, #name)

// fill(out, dt, n, value)
KILN_BIND(fill) {
  K(fill)(bind::data(info, 0), bind::dtype(info, 1), bind::i64(info, 2), bind::num(info, 3));
  return info.Env().Undefined();
}

// random(out, dt, n, dist, p0, p1, seed, offset)
KILN_BIND(random) {
  K(random)(bind::data(info, 0), bind::dtype(info, 1), bind::i64(info, 2), RandomDist(bind::i64(info, 3)),
            bind::num(info, 4), bind::num(info, 5), uint64_t(bind::num(info, 6)), uint64_t(bind::num(info, 7)));
  return info.Env().Undefined();
}

// cast(x, xd, out, od, n)
KILN_BIND(cast) {
  K(cast)(bind::data(info, 0), bind::dtype(info, 1), bind::data(info, 2), bind::dtype(info, 3), bind::i64(info, 4));
  return info.Env().Undefined();
}

// copy(src, srcOff, dst, dstOff, dt, shape, srcStrides, dstStrides)
KILN_BIND(copy) {
  Strides st = bind::strides(info, 5, 2);
  K(copy)(bind::data(info, 0), bind::i64(info, 1), bind::data(info, 2), bind::i64(info, 3), st, bind::dtype(info, 4));
  return info.Env().Undefined();
}

// unary(op, x, out, dt, n)
KILN_BIND(unary) {
  K(unary)(UnaryOp(bind::i64(info, 0)), bind::data(info, 1), bind::data(info, 2), bind::dtype(info, 3), bind::i64(info, 4));
  return info.Env().Undefined();
}

// unaryGrad(op, x, dy, out, dt, n)
KILN_BIND(unaryGrad) {
  K(unary_grad)(UnaryOp(bind::i64(info, 0)), bind::data(info, 1), bind::data(info, 2), bind::data(info, 3),
                bind::dtype(info, 4), bind::i64(info, 5));
  return info.Env().Undefined();
}

// binary(op, a, b, out, dt, shape, aStrides, bStrides)
KILN_BIND(binary) {
  Strides st = bind::strides(info, 5, 2);
  K(binary)(BinaryOp(bind::i64(info, 0)), bind::data(info, 1), bind::data(info, 2), bind::data(info, 3), st,
            bind::dtype(info, 4));
  return info.Env().Undefined();
}

// where(cond, x, y, out, dt, shape, condStrides, xStrides, yStrides)
KILN_BIND(where) {
  Strides st = bind::strides(info, 5, 3);
  K(where)(static_cast<const uint8_t*>(bind::data(info, 0)), bind::data(info, 1), bind::data(info, 2),
           bind::data(info, 3), st, bind::dtype(info, 4));
  return info.Env().Undefined();
}

// reduce(op, x, dt, outer, r, inner, out)
KILN_BIND(reduce) {
  K(reduce)(ReduceOp(bind::i64(info, 0)), bind::data(info, 1), bind::dtype(info, 2), bind::i64(info, 3),
            bind::i64(info, 4), bind::i64(info, 5), bind::data(info, 6));
  return info.Env().Undefined();
}

// matmul(a, b, out, bias, dt, batchShape, aBatchStrides, bBatchStrides, m, n, k, transA, transB, act)
KILN_BIND(matmul) {
  MatmulParams p{};
  p.a = bind::data(info, 0);
  p.b = bind::data(info, 1);
  p.out = bind::data(info, 2);
  p.bias = bind::data(info, 3);
  p.dtype = bind::dtype(info, 4);
  p.batch_rank = bind::ints(info, 5, p.batch_shape);
  if (bind::ints(info, 6, p.a_batch_strides) != p.batch_rank || bind::ints(info, 7, p.b_batch_strides) != p.batch_rank)
    throw bind::error(info, "matmul: batch strides must match the batch rank");
  p.m = bind::i64(info, 8);
  p.n = bind::i64(info, 9);
  p.k = bind::i64(info, 10);
  p.trans_a = bind::flag(info, 11);
  p.trans_b = bind::flag(info, 12);
  p.act = Activation(bind::i64(info, 13));
  K(matmul)(p);
  return info.Env().Undefined();
}

IndexParams index_params(const Napi::CallbackInfo& info, size_t i) {
  IndexParams p{};
  p.index = static_cast<const int32_t*>(bind::data(info, i));
  p.s0 = bind::i64(info, i + 1);
  p.s1 = bind::i64(info, i + 2);
  p.s2 = bind::i64(info, i + 3);
  p.outer = bind::i64(info, i + 4);
  p.src_dim = bind::i64(info, i + 5);
  p.n = bind::i64(info, i + 6);
  p.inner = bind::i64(info, i + 7);
  p.dtype = bind::dtype(info, i + 8);
  return p;
}

// gather(x, out, index, s0, s1, s2, outer, srcDim, n, inner, dt)
KILN_BIND(gather) {
  K(gather)(bind::data(info, 0), bind::data(info, 1), index_params(info, 2));
  return info.Env().Undefined();
}

// scatterAdd(dst, src, index, s0, s1, s2, outer, srcDim, n, inner, dt)
KILN_BIND(scatterAdd) {
  K(scatter_add)(bind::data(info, 0), bind::data(info, 1), index_params(info, 2));
  return info.Env().Undefined();
}

// softmax(x, out, dt, rows, cols, log)
KILN_BIND(softmax) {
  K(softmax)(bind::data(info, 0), bind::data(info, 1), bind::dtype(info, 2), bind::i64(info, 3), bind::i64(info, 4),
             bind::flag(info, 5));
  return info.Env().Undefined();
}

// layerNorm(x, w, b, out, mean, rstd, dt, rows, cols, eps, rms)
KILN_BIND(layerNorm) {
  K(layer_norm)(bind::data(info, 0), bind::data(info, 1), bind::data(info, 2), bind::data(info, 3),
                bind::data(info, 4), bind::data(info, 5), bind::dtype(info, 6), bind::i64(info, 7), bind::i64(info, 8),
                bind::num(info, 9), bind::flag(info, 10));
  return info.Env().Undefined();
}

// layerNormBackward(dy, x, w, mean, rstd, dx, dw, db, dt, rows, cols, rms)
KILN_BIND(layerNormBackward) {
  K(layer_norm_backward)(bind::data(info, 0), bind::data(info, 1), bind::data(info, 2), bind::data(info, 3),
                         bind::data(info, 4), bind::data(info, 5), bind::data(info, 6), bind::data(info, 7),
                         bind::dtype(info, 8), bind::i64(info, 9), bind::i64(info, 10), bind::flag(info, 11));
  return info.Env().Undefined();
}

// crossEntropy(logits, targets, loss, lse, dt, rows, classes, ignoreIndex, smoothing)
KILN_BIND(crossEntropy) {
  K(cross_entropy)(bind::data(info, 0), static_cast<const int32_t*>(bind::data(info, 1)), bind::data(info, 2),
                   bind::data(info, 3), bind::dtype(info, 4), bind::i64(info, 5), bind::i64(info, 6),
                   bind::i64(info, 7), bind::num(info, 8));
  return info.Env().Undefined();
}

// crossEntropyBackward(logits, targets, lse, dloss, dlogits, dt, rows, classes, ignoreIndex, smoothing)
KILN_BIND(crossEntropyBackward) {
  K(cross_entropy_backward)(bind::data(info, 0), static_cast<const int32_t*>(bind::data(info, 1)),
                            bind::data(info, 2), bind::data(info, 3), bind::data(info, 4), bind::dtype(info, 5),
                            bind::i64(info, 6), bind::i64(info, 7), bind::i64(info, 8), bind::num(info, 9));
  return info.Env().Undefined();
}

// (q, k, v, mask, maskBool, maskBatchStride, batch, tq, tk, d, dv, scale, causal, dt) at 0..13
AttentionParams attention_params(const Napi::CallbackInfo& info) {
  AttentionParams p{};
  p.q = bind::data(info, 0);
  p.k = bind::data(info, 1);
  p.v = bind::data(info, 2);
  p.mask = bind::data(info, 3);
  p.mask_bool = bind::flag(info, 4);
  p.mask_batch_stride = bind::i64(info, 5);
  p.batch = bind::i64(info, 6);
  p.tq = bind::i64(info, 7);
  p.tk = bind::i64(info, 8);
  p.d = bind::i64(info, 9);
  p.dv = bind::i64(info, 10);
  p.scale = bind::num(info, 11);
  p.causal = bind::flag(info, 12);
  p.dtype = bind::dtype(info, 13);
  return p;
}

// attention(...14 params..., out, lse)
KILN_BIND(attention) {
  K(attention)(attention_params(info), bind::data(info, 14), bind::data(info, 15));
  return info.Env().Undefined();
}

// attentionBackward(...14 params..., out, lse, dout, dq, dk, dv)
KILN_BIND(attentionBackward) {
  K(attention_backward)(attention_params(info), bind::data(info, 14), bind::data(info, 15), bind::data(info, 16),
                        bind::data(info, 17), bind::data(info, 18), bind::data(info, 19));
  return info.Env().Undefined();
}

// (param, grad, m, v, n, dt, lr, beta1, beta2, eps, weightDecay, step, decoupled, biasCorrection)
OptimizerParams optimizer_params(const Napi::CallbackInfo& info) {
  OptimizerParams p{};
  p.param = bind::data(info, 0);
  p.grad = bind::data(info, 1);
  p.m = bind::data(info, 2);
  p.v = bind::data(info, 3);
  p.n = bind::i64(info, 4);
  p.dtype = bind::dtype(info, 5);
  p.lr = bind::num(info, 6);
  p.beta1 = bind::num(info, 7);
  p.beta2 = bind::num(info, 8);
  p.eps = bind::num(info, 9);
  p.weight_decay = bind::num(info, 10);
  p.step = bind::i64(info, 11);
  p.decoupled = bind::flag(info, 12);
  p.bias_correction = bind::flag(info, 13);
  return p;
}

KILN_BIND(adamUpdate) {
  K(adam_update)(optimizer_params(info));
  return info.Env().Undefined();
}

KILN_BIND(lambUpdate) { return Napi::Number::New(info.Env(), K(lamb_update)(optimizer_params(info))); }

}  // namespace
