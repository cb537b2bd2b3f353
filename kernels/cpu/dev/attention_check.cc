// Development harness for kernels/cpu/isa/attention.cc (as llm.c's dev/cuda/*.cu): checks the
// forward and the backward against a naive double-precision reference (the math of
// src/backend/ref/ref.ts `attention`/`attentionBackward`, written again here) on random cases,
// checks dropout keep decisions exactly, and times two shapes.
//
// What it checks: about 470 cases (fixed ones, then random: B, H ≤ 3; Tq, Tk and the widths from 1
// through ragged sizes and the tile edges 63–65, 127–129 to 300; qk_dim ≠ v_dim; q, k, v as
// views into one packed [B, T, 3·H·D] buffer, or [B, H, T, D], [B, T, H, D], or rows with gaps;
// out and dout as [B, T, H·Dv] or with gaps; causal with offsets −3, 0, Tk − Tq and random ones;
// bool and additive masks, broadcast over batch, heads, queries or keys, or stored transposed,
// with rows that have nothing to attend; dropout p = 0, 0.1, 0.5, 1; f32 and f64; 1, 4 or 16
// workers as the kernel sees them), every element of every output view compared and every
// element outside the views checked untouched; dropout keep decisions exactly (cases whose v and
// dout are identities, so out[i][j] and dv[j][i] are p_ij·z_ij: zero exactly where dropped, some
// with a threshold equal to one element's word); Philox against the Random123 vectors and an
// independent implementation.
//
// Build and run from the repository root, one command per instruction set (the flags are
// CMakeLists.txt's KILN_COMMON_FLAGS and KILN_FLAGS_<isa>). The kernel file is #included, so
// this needs the tree where kernels/cpu/kernels.h includes ../ops.gen.h (the generated Args
// structs and Table). parallel_for below runs on the calling thread:
//
//   g++ -O3 -std=c++17 -ffp-contract=off -fno-math-errno -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mfma -mavx2 -mf16c -mbmi2 -mprefer-vector-width=512 -DKILN_ISA=avx512 -DKILN_ISA_avx512=1 -Ikernels/cpu kernels/cpu/dev/attention_check.cc -o /tmp/attention_check_avx512 && /tmp/attention_check_avx512
//   g++ -O3 -std=c++17 -ffp-contract=off -fno-math-errno -mavx2 -mfma -mf16c -mbmi2 -DKILN_ISA=avx2 -DKILN_ISA_avx2=1 -Ikernels/cpu kernels/cpu/dev/attention_check.cc -o /tmp/attention_check_avx2 && /tmp/attention_check_avx2
//   g++ -O3 -std=c++17 -ffp-contract=off -fno-math-errno -DKILN_ISA=base -DKILN_ISA_base=1 -Ikernels/cpu kernels/cpu/dev/attention_check.cc -o /tmp/attention_check_base && /tmp/attention_check_base
//
// Options: --cases N (random cases, default 400), --seed S, --no-bench, --bench-only, --reps N,
// --filter "WORDS" (only the timing rows whose shape and layout contain every word, e.g.
// "gpt packed", "long old").
// It prints a table of max errors and exits non-zero when a case fails. An element's error is
// |kernel − reference| over the sum of the absolute values of its terms (floored at 10⁻³ of the
// tensor's largest such sum), so cancellation is measured against the size of the terms; lse's
// is relative to max(1, |lse|).
//
// Timing the previous kernel side by side (the flash kernel of commit 27c490e, for contiguous
// [B·H, T, D] operands, with its own headers): build this file a second time as a bridge
// object against that tree, then link it in with -DKILN_ATTENTION_OLD (avx2 shown):
//
//   rm -rf /tmp/kiln_old && mkdir -p /tmp/kiln_old && git archive 27c490e kernels/cpu | tar -x -C /tmp/kiln_old
//   g++ -O3 -std=c++17 -ffp-contract=off -fno-math-errno -mavx2 -mfma -mf16c -mbmi2 -DKILN_ISA=old_avx2 -DKILN_ISA_avx2=1 -DKILN_ATTENTION_OLD_BRIDGE -I/tmp/kiln_old/kernels/cpu -c kernels/cpu/dev/attention_check.cc -o /tmp/attention_old_avx2.o
//   g++ -O3 -std=c++17 -ffp-contract=off -fno-math-errno -mavx2 -mfma -mf16c -mbmi2 -DKILN_ISA=avx2 -DKILN_ISA_avx2=1 -DKILN_ATTENTION_OLD -Ikernels/cpu kernels/cpu/dev/attention_check.cc /tmp/attention_old_avx2.o -o /tmp/attention_check_avx2 && /tmp/attention_check_avx2 --bench-only
//
// Recorded (2 vCPU AMD EPYC VM with AVX-512, shared and loaded; --bench-only --reps 60; best of
// the rounds in ms of CPU time, f32, causal, one thread; noise ±10%):
//   shape                        layout        avx2 fwd   bwd     avx512 fwd   bwd
//   B=16 H=4 T=64 D=32           packed         0.95     1.40       0.75     1.33
//                                packed p=.1    1.13     1.63       0.94     1.53
//                                bhtd           0.89     1.28       0.69     1.17
//                                old kernel     0.90     2.00       0.70     1.87
//   B=1 H=4 T=1024 D=64          packed         7.93    16.74       7.29    16.58
//                                packed p=.1    9.81    18.79       8.86    18.18
//                                bhtd           7.81    15.87       6.89    15.20
//                                old kernel     8.19    18.50       6.85    17.30
#include <cstdint>

// The old kernel's entry points, for contiguous f32 q [BH, T, D], k [BH, T, D], v [BH, T, Dv].
namespace kiln_old_bridge {
void forward(const float* q, const float* k, const float* v, float* out, float* lse, int64_t bh, int64_t t,
             int64_t d, int64_t dv, double scale, bool causal);
void backward(const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
              float* dq, float* dk, float* dv, int64_t bh, int64_t t, int64_t d, int64_t dvd, double scale,
              bool causal);
}  // namespace kiln_old_bridge

#ifdef KILN_ATTENTION_OLD_BRIDGE
// ---- the bridge object: the previous kernel, compiled against its own headers ---------------
#include "isa/attention.cc"  // found through -I<old tree>/kernels/cpu

namespace kiln_old_bridge {
static kiln::AttentionParams params(const float* q, const float* k, const float* v, int64_t bh, int64_t t, int64_t d,
                                    int64_t dv, double scale, bool causal) {
  kiln::AttentionParams p{};
  p.q = q, p.k = k, p.v = v, p.mask = nullptr, p.mask_bool = false, p.mask_batch_stride = 0;
  p.batch = bh, p.tq = t, p.tk = t, p.d = d, p.dv = dv, p.scale = scale, p.causal = causal, p.dtype = kiln::F32;
  return p;
}
static const kiln::Table& table() {
  static const kiln::Table t = [] {
    kiln::Table x{};
    kiln::KILN_ISA::add_attention(x);
    return x;
  }();
  return t;
}
void forward(const float* q, const float* k, const float* v, float* out, float* lse, int64_t bh, int64_t t,
             int64_t d, int64_t dv, double scale, bool causal) {
  table().attention(params(q, k, v, bh, t, d, dv, scale, causal), out, lse);
}
void backward(const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
              float* dq, float* dk, float* dv, int64_t bh, int64_t t, int64_t d, int64_t dvd, double scale,
              bool causal) {
  table().attention_backward(params(q, k, v, bh, t, d, dvd, scale, causal), out, lse, dout, dq, dk, dv);
}
}  // namespace kiln_old_bridge

#else
// ---- the harness ----------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <ctime>
#include <vector>

#include "../isa/attention.cc"

#define KILN_STR2(x) #x
#define KILN_STR(x) KILN_STR2(x)

// The thread pool's entry points (native/threadpool.cc), here on the calling thread. The kernel
// sees g_threads workers, and parallel_for splits [0, n) as the pool would (at most that many
// chunks of at least `grain`) but runs the chunks one after another, last first: so the checks
// cover the multi-worker paths (work split into chunks, per-worker buffers summed) too.
namespace {
int g_threads = 1;
}
namespace kiln {
int num_threads() { return g_threads; }
void set_num_threads(int n) { g_threads = n; }
void parallel_for(int64_t n, int64_t grain, void (*fn)(void* ctx, int64_t begin, int64_t end), void* ctx) {
  if (n <= 0) return;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(g_threads, n / std::max<int64_t>(grain, 1)));
  for (int64_t c = chunks - 1; c >= 0; c--) fn(ctx, n * c / chunks, n * (c + 1) / chunks);
}
}  // namespace kiln

namespace {

using kiln::Buf;
using kiln::Ints;

const double kInfD = std::numeric_limits<double>::infinity();

// ---- Philox4x32-10, written again from src/backend/philox.ts --------------------------------
void ref_philox(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; r++) {
    const uint64_t a = uint64_t(0xd2511f53u) * c[0], b = uint64_t(0xcd9e8d57u) * c[2];
    const uint32_t n0 = uint32_t(b >> 32) ^ c[1] ^ k0, n1 = uint32_t(b);
    const uint32_t n2 = uint32_t(a >> 32) ^ c[3] ^ k1, n3 = uint32_t(a);
    c[0] = n0, c[1] = n1, c[2] = n2, c[3] = n3;
    k0 += 0x9e3779b9u, k1 += 0xbb67ae85u;
  }
}
// word e of the stream (seed, offset), as PhiloxWords.word
uint32_t ref_word(uint64_t seed, uint64_t offset, uint64_t e) {
  const uint64_t ctr = offset + e / 4;
  uint32_t c[4] = {uint32_t(ctr), uint32_t(ctr >> 32), 0, 0};
  ref_philox(c, uint32_t(seed), uint32_t(seed >> 32));
  return c[e % 4];
}

// Published Random123 vectors, and philox_words against ref_word on ragged runs.
int check_philox(std::mt19937_64& rng) {
  int bad = 0;
  const uint32_t kat[2][10] = {
      {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
       0x24126ea1}};
  for (const auto& v : kat) {
    uint32_t o[4];
    kiln::philox4x32_10(v[0], v[1], v[2], v[3], {v[4], v[5]}, o);
    uint32_t c[4] = {v[0], v[1], v[2], v[3]};
    ref_philox(c, v[4], v[5]);
    for (int i = 0; i < 4; i++) bad += (o[i] != v[6 + i]) + (c[i] != v[6 + i]);
  }
  std::vector<uint32_t> w(3000);
  for (int t = 0; t < 300; t++) {
    const uint64_t seed = rng() >> 11, offset = t % 3 == 0 ? 0xfffffff0ull + (rng() % 32) : rng() >> 12;
    const uint64_t e0 = rng() % 100000;
    const int64_t n = int64_t(rng() % 3000);
    kiln::philox_words(kiln::philox_key(seed), offset, e0, n, w.data());
    for (int64_t i = 0; i < n; i++) bad += w[size_t(i)] != ref_word(seed, offset, e0 + uint64_t(i));
  }
  return bad;
}

// ---- operands -------------------------------------------------------------------------------

// A strided [B, H, T, C] view into a buffer
struct Layout {
  int64_t off, s0, s1, s2;
  int64_t at(int64_t b, int64_t h, int64_t t) const { return off + b * s0 + h * s1 + t * s2; }
};

Ints ints(std::initializer_list<int64_t> v) {
  Ints r{};
  r.rank = int64_t(v.size());
  int i = 0;
  for (int64_t x : v) r.v[i++] = x;
  return r;
}

enum LayoutKind { PACKED, BHTD, BTHD, GAPS, NLAYOUTS };
const char* kLayoutNames[] = {"packed", "bhtd", "bthd", "gaps"};

// Layouts of three tensors of widths w[0..2] with T rows each: packed side by side in one
// [B, T, H·(w0 + w1 + w2)] buffer, or each in a buffer of its own. Returns the buffer sizes
// (one for packed).
std::vector<int64_t> make_layouts(LayoutKind kind, int64_t B, int64_t H, int64_t T, const int64_t w[3], Layout out[3],
                                  std::mt19937_64& rng) {
  std::vector<int64_t> sizes;
  const int64_t lead = int64_t(rng() % 5);
  if (kind == PACKED) {
    const int64_t rw = H * (w[0] + w[1] + w[2]);
    int64_t col = 0;
    for (int i = 0; i < 3; i++) {
      out[i] = {lead + col, T * rw, w[i], rw};
      col += H * w[i];
    }
    sizes.push_back(lead + B * T * rw);
    return sizes;
  }
  for (int i = 0; i < 3; i++) {
    const int64_t C = w[i];
    if (kind == BHTD) {
      out[i] = {lead, H * T * C, T * C, C};
      sizes.push_back(lead + B * H * T * C);
    } else if (kind == BTHD) {
      out[i] = {lead, T * H * C, C, H * C};
      sizes.push_back(lead + B * T * H * C);
    } else {  // rows with gaps, heads and batches with gaps
      const int64_t ld = C + 1 + int64_t(rng() % 5), hs = T * ld + int64_t(rng() % 7), bs = H * hs + int64_t(rng() % 7);
      out[i] = {lead, bs, hs, ld};
      sizes.push_back(lead + B * bs);
    }
  }
  return sizes;
}

// ---- one case -------------------------------------------------------------------------------

struct Case {
  int64_t B, H, Tq, Tk, D, Dv;
  LayoutKind layout;   // q, k, v (and dq, dk, dv)
  LayoutKind olayout;  // out and dout: BTHD ([B, T, H·Dv]) or GAPS
  bool causal = false;
  int64_t coff = 0;
  int mask = 0;       // 0 none, 1 bool, 2 additive
  int mask_kind = 0;  // 0 [mb, mh, Tq, Tk], 1 keys broadcast, 2 stored transposed, 3 queries broadcast
  bool mb = false, mh = false;  // mask broadcast over batch / heads
  double p = 0;
  bool f64 = false;
  bool identity = false;  // dropout pattern case: Tq = Tk = Dv, v and dout identity
  bool boundary = false;  // identity case whose threshold equals one element's word (kept: ≥)
  int threads = 1;        // workers the kernel sees
  uint64_t seed = 0;
};

std::string describe(const Case& c) {
  char s[400];
  std::snprintf(s, sizeof s,
                "%s B=%lld H=%lld Tq=%lld Tk=%lld D=%lld Dv=%lld qkv=%s out=%s causal=%d off=%lld mask=%d kind=%d "
                "mb=%d mh=%d p=%g identity=%d boundary=%d threads=%d seed=%llu",
                c.f64 ? "f64" : "f32", (long long)c.B, (long long)c.H, (long long)c.Tq, (long long)c.Tk,
                (long long)c.D, (long long)c.Dv, kLayoutNames[c.layout], kLayoutNames[c.olayout], c.causal,
                (long long)c.coff, c.mask, c.mask_kind, c.mb, c.mh, c.p, c.identity, c.boundary, c.threads, (unsigned long long)c.seed);
  return s;
}

struct Errors {
  double out = 0, lse = 0, dq = 0, dk = 0, dv = 0;
  int64_t pattern = 0;   // dropout keep decisions that differ (identity cases)
  int64_t sentinel = 0;  // elements outside the output views that were written
};

// dropoutThreshold(p) of philox.ts
int64_t dropout_threshold(double p) {
  if (!(p > 0)) return 0;
  return std::min<int64_t>(int64_t(1) << 32, int64_t(std::ceil(p * 4294967296.0)));
}

// Sentinel for output elements: a NaN with a payload no kernel writes.
template <typename T>
T sentinel() {
  if constexpr (sizeof(T) == 4) {
    uint32_t u = 0x7fa5a5a5u;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  } else {
    uint64_t u = 0x7ff5a5a5a5a5a5a5ull;
    double f;
    std::memcpy(&f, &u, 8);
    return f;
  }
}
template <typename T>
bool is_sentinel(T x) {
  T s = sentinel<T>();
  return std::memcmp(&x, &s, sizeof(T)) == 0;
}

// max over a view of the kernel's buffer of |x − r| / max(a, 10⁻³·max a), with r the reference
// [B, H, T, C] and a its condition: the same sums over absolute values (so cancellation, as in
// dS = P∘(dP − D) with one key, is measured against the size of the terms, not of the result).
// Marks the view's elements in `covered`.
template <typename T>
double compare(const std::vector<T>& buf, const Layout& L, const std::vector<double>& ref,
               const std::vector<double>& cond, int64_t B, int64_t H, int64_t Tn, int64_t C,
               std::vector<char>& covered) {
  double top = 0, err = 0;
  for (double a : cond) top = std::max(top, a);
  const double floor = top > 0 ? 1e-3 * top : 1;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t t = 0; t < Tn; t++)
        for (int64_t c = 0; c < C; c++) {
          const int64_t at = L.at(b, h, t) + c;
          covered[size_t(at)] = 1;
          const size_t i = size_t(((b * H + h) * Tn + t) * C + c);
          const double x = double(buf[size_t(at)]), r = ref[i];
          const double e = std::isfinite(r) ? std::fabs(x - r) / std::max(cond[i], floor) : (x == r ? 0 : kInfD);
          err = std::max(err, e != e ? kInfD : e);
        }
  return err;
}

template <typename T>
int64_t count_written_outside(const std::vector<T>& buf, const std::vector<char>& covered) {
  int64_t n = 0;
  for (size_t i = 0; i < buf.size(); i++) n += !covered[i] && !is_sentinel(buf[i]);
  return n;
}

template <typename T>
Errors run_case(const Case& c) {
  g_threads = c.threads;
  std::mt19937_64 rng(c.seed);
  std::normal_distribution<double> normal(0, 1);
  const int64_t B = c.B, H = c.H, Tq = c.Tq, Tk = c.Tk, D = c.D, Dv = c.Dv;
  const double scale = 1 / std::sqrt(double(D)) * (c.identity ? 0.5 : 1.5);

  // q, k, v (one buffer when packed, which needs Tq = Tk)
  Layout L[3];
  const int64_t widths[3] = {D, D, Dv};
  std::vector<std::vector<T>> in;
  if (c.layout == PACKED) {
    auto sizes = make_layouts(PACKED, B, H, Tq, widths, L, rng);
    in.assign(1, std::vector<T>(size_t(sizes[0]), T(0)));
  } else {
    // q has Tq rows, k and v Tk: lay them out one at a time
    for (int i = 0; i < 3; i++) {
      Layout l3[3];
      const int64_t w1[3] = {widths[i], widths[i], widths[i]};
      auto sizes = make_layouts(c.layout, B, H, i == 0 ? Tq : Tk, w1, l3, rng);
      L[i] = l3[0];
      in.emplace_back(size_t(sizes[0]), T(0));
    }
  }
  auto qbuf = [&](int i) -> std::vector<T>& { return in[c.layout == PACKED ? 0 : size_t(i)]; };
  // values, rounded to T; the reference reads them back as doubles
  std::vector<double> Q(size_t(B * H * Tq * D)), K(size_t(B * H * Tk * D)), Vv(size_t(B * H * Tk * Dv));
  auto fill = [&](int i, std::vector<double>& dense, int64_t Tn, int64_t C, bool identity) {
    for (int64_t b = 0; b < B; b++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < Tn; t++)
          for (int64_t cc = 0; cc < C; cc++) {
            const T x = identity ? T(t == cc ? 1 : 0) : T(normal(rng));
            qbuf(i)[size_t(L[i].at(b, h, t) + cc)] = x;
            dense[size_t(((b * H + h) * Tn + t) * C + cc)] = double(x);
          }
  };
  fill(0, Q, Tq, D, false);
  fill(1, K, Tk, D, false);
  fill(2, Vv, Tk, Dv, c.identity);

  // out and dout: [B, T, H·Dv] or with gaps
  Layout LO[3];
  const int64_t wo[3] = {Dv, Dv, Dv};
  auto osizes = make_layouts(c.olayout, B, H, Tq, wo, LO, rng);
  std::vector<T> outb(size_t(osizes[0]), sentinel<T>()), doutb(size_t(osizes[1]), T(0));
  std::vector<double> dO(size_t(B * H * Tq * Dv));
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t t = 0; t < Tq; t++)
        for (int64_t cc = 0; cc < Dv; cc++) {
          const T x = c.identity ? T(t == cc ? 1 : 0) : T(normal(rng));
          doutb[size_t(LO[1].at(b, h, t) + cc)] = x;
          dO[size_t(((b * H + h) * Tq + t) * Dv + cc)] = double(x);
        }
  std::vector<T> lseb(size_t(B * H * Tq), sentinel<T>());

  // mask [mb, mh, ·, ·] with strides
  const int64_t MB = c.mb ? 1 : B, MH = c.mh ? 1 : H;
  int64_t ms[4] = {0, 0, 0, 0};
  int64_t mrows = Tq, mcols = Tk;  // stored extent of the last two axes
  if (c.mask_kind == 1) mcols = 1;
  if (c.mask_kind == 3) mrows = 1;
  const int64_t msize = MB * MH * mrows * mcols;
  if (c.mask_kind == 2) {  // stored [.., Tk, Tq]
    ms[2] = 1, ms[3] = Tq;
  } else {
    ms[2] = c.mask_kind == 3 ? 0 : mcols;
    ms[3] = c.mask_kind == 1 ? 0 : 1;
  }
  ms[1] = MH == 1 ? 0 : mrows * mcols;
  ms[0] = MB == 1 ? 0 : MH * mrows * mcols;
  std::vector<uint8_t> bmask;
  std::vector<T> fmask;
  std::uniform_real_distribution<double> unif(0, 1);
  if (c.mask == 1) {
    bmask.resize(size_t(msize));
    for (auto& x : bmask) x = uint8_t(unif(rng) < 0.8 ? 1 + rng() % 3 : 0);  // any nonzero byte attends
  } else if (c.mask == 2) {
    fmask.resize(size_t(msize));
    for (auto& x : fmask) x = unif(rng) < 0.1 ? T(-kInfD) : T(normal(rng));
  }
  // a few rows with nothing to attend
  if (c.mask && Tq > 2 && rng() % 2)
    for (int r = 0; r < 2; r++) {
      const int64_t i = int64_t(rng() % uint64_t(Tq));
      for (int64_t b = 0; b < MB; b++)
        for (int64_t h = 0; h < MH; h++)
          for (int64_t j = 0; j < Tk; j++) {
            const int64_t at = b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3];
            if (c.mask == 1) bmask[size_t(at)] = 0;
            else fmask[size_t(at)] = T(-kInfD);
          }
    }
  auto mask_at = [&](int64_t b, int64_t h, int64_t i, int64_t j) {
    return (c.mb ? 0 : b) * ms[0] + (c.mh ? 0 : h) * ms[1] + i * ms[2] + j * ms[3];
  };
  // the kernel reads b·ms[0] + h·ms[1] …: broadcast axes have stride 0 already
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      if (mask_at(b, h, 0, 0) != b * ms[0] + h * ms[1]) std::abort();

  int64_t threshold = dropout_threshold(c.p);
  double dscale = 1 / (1 - c.p);
  const uint64_t dseed = rng() >> 11, doff = rng() >> 14;
  if (c.boundary) {
    threshold = ref_word(dseed, doff, rng() % uint64_t(B * H * Tq * Tk));
    dscale = 1 / (1 - double(threshold) / 4294967296.0);
  }

  // ---- the kernel ----
  kiln::Table table{};
  kiln::KILN_ISA::add_attention(table);
  const kiln::DType dt = sizeof(T) == 8 ? kiln::F64 : kiln::F32;
  Buf mbuf{nullptr, 0, dt};
  if (c.mask == 1) mbuf = {bmask.data(), int64_t(bmask.size()), kiln::BOOL};
  if (c.mask == 2) mbuf = {fmask.data(), int64_t(fmask.size()), dt};
  auto B_ = [&](std::vector<T>& v) { return Buf{v.data(), int64_t(v.size()), dt}; };
  kiln::AttentionArgs a{};
  a.q = B_(qbuf(0)), a.q_offset = L[0].off, a.q_strides = ints({L[0].s0, L[0].s1, L[0].s2, 1});
  a.k = B_(qbuf(1)), a.k_offset = L[1].off, a.k_strides = ints({L[1].s0, L[1].s1, L[1].s2, 1});
  a.v = B_(qbuf(2)), a.v_offset = L[2].off, a.v_strides = ints({L[2].s0, L[2].s1, L[2].s2, 1});
  a.out = B_(outb), a.out_offset = LO[0].off, a.out_strides = ints({LO[0].s0, LO[0].s1, LO[0].s2, 1});
  a.lse = B_(lseb);
  a.batch = B, a.heads = H, a.kv_heads = H, a.tq = Tq, a.tk = Tk, a.qk_dim = D, a.v_dim = Dv;
  a.scale = scale, a.causal = c.causal, a.causal_offset = c.coff;
  a.mask = mbuf, a.mask_strides = ints({ms[0], ms[1], ms[2], ms[3]});
  a.dropout_threshold = threshold, a.dropout_scale = dscale, a.seed = int64_t(dseed), a.dropout_offset = int64_t(doff);
  table.attention(a);

  // gradients: packed like q, k, v, or buffers of their own
  Layout LG[3];
  std::vector<std::vector<T>> gb;
  if (c.layout == PACKED) {
    auto sizes = make_layouts(PACKED, B, H, Tq, widths, LG, rng);
    gb.assign(1, std::vector<T>(size_t(sizes[0]), sentinel<T>()));
  } else {
    for (int i = 0; i < 3; i++) {
      Layout l3[3];
      const int64_t w1[3] = {widths[i], widths[i], widths[i]};
      auto sizes = make_layouts(c.layout, B, H, i == 0 ? Tq : Tk, w1, l3, rng);
      LG[i] = l3[0];
      gb.emplace_back(size_t(sizes[0]), sentinel<T>());
    }
  }
  auto gbuf = [&](int i) -> std::vector<T>& { return gb[c.layout == PACKED ? 0 : size_t(i)]; };
  kiln::AttentionBackwardArgs g{};
  g.q = a.q, g.q_offset = a.q_offset, g.q_strides = a.q_strides;
  g.k = a.k, g.k_offset = a.k_offset, g.k_strides = a.k_strides;
  g.v = a.v, g.v_offset = a.v_offset, g.v_strides = a.v_strides;
  g.out = a.out, g.out_offset = a.out_offset, g.out_strides = a.out_strides;
  g.lse = a.lse;
  g.dout = B_(doutb), g.dout_offset = LO[1].off, g.dout_strides = ints({LO[1].s0, LO[1].s1, LO[1].s2, 1});
  g.dq = B_(gbuf(0)), g.dq_offset = LG[0].off, g.dq_strides = ints({LG[0].s0, LG[0].s1, LG[0].s2, 1});
  g.dk = B_(gbuf(1)), g.dk_offset = LG[1].off, g.dk_strides = ints({LG[1].s0, LG[1].s1, LG[1].s2, 1});
  g.dv = B_(gbuf(2)), g.dv_offset = LG[2].off, g.dv_strides = ints({LG[2].s0, LG[2].s1, LG[2].s2, 1});
  g.batch = B, g.heads = H, g.kv_heads = H, g.tq = Tq, g.tk = Tk, g.qk_dim = D, g.v_dim = Dv;
  g.scale = scale, g.causal = c.causal, g.causal_offset = c.coff;
  g.mask = a.mask, g.mask_strides = a.mask_strides;
  g.dropout_threshold = threshold, g.dropout_scale = dscale, g.seed = a.seed, g.dropout_offset = a.dropout_offset;
  table.attention_backward(g);

  // ---- the reference, in doubles (ref.ts) ----
  std::vector<double> rO(size_t(B * H * Tq * Dv), 0), rL(size_t(B * H * Tq)), rdQ(Q.size(), 0), rdK(K.size(), 0),
      rdV(Vv.size(), 0);
  // conditions: the same sums of absolute values
  std::vector<double> aO(rO.size(), 0), adQ(rdQ.size(), 0), adK(rdK.size(), 0), adV(rdV.size(), 0);
  const size_t tk = size_t(Tk);
  std::vector<double> s(tk), z(tk);
  std::vector<char> masked(tk);
  Errors e;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Tq; i++) {
        const int64_t row = (b * H + h) * Tq + i;
        const double* q = &Q[size_t(row * D)];
        double m = -kInfD;
        for (int64_t j = 0; j < Tk; j++) {
          const int64_t mat = mask_at(b, h, i, j);
          masked[size_t(j)] = (c.causal && j > i + c.coff) || (c.mask == 1 && !bmask[size_t(mat)]);
          if (masked[size_t(j)]) {
            s[size_t(j)] = -kInfD;
          } else {
            const double* k = &K[size_t(((b * H + h) * Tk + j) * D)];
            double dot = 0;
            for (int64_t cc = 0; cc < D; cc++) dot += q[cc] * k[cc];
            s[size_t(j)] = dot * scale + (c.mask == 2 ? double(fmask[size_t(mat)]) : 0);
          }
          m = std::max(m, s[size_t(j)]);
          z[size_t(j)] = threshold == 0 ? 1
                         : uint64_t(ref_word(dseed, doff, uint64_t(row * Tk + j))) >= uint64_t(threshold) ? dscale
                                                                                                           : 0;
        }
        double lse = m;
        if (m != -kInfD) {
          double sum = 0;
          for (int64_t j = 0; j < Tk; j++) sum += std::exp(s[size_t(j)] - m);
          lse = m + std::log(sum);
        }
        rL[size_t(row)] = lse;
        if (lse == -kInfD) continue;
        double* o = &rO[size_t(row * Dv)];
        double* oa = &aO[size_t(row * Dv)];
        for (int64_t j = 0; j < Tk; j++) {
          const double p = std::exp(s[size_t(j)] - lse) * z[size_t(j)];
          if (p == 0) continue;
          const double* v = &Vv[size_t(((b * H + h) * Tk + j) * Dv)];
          for (int64_t cc = 0; cc < Dv; cc++) o[cc] += p * v[cc], oa[cc] += p * std::fabs(v[cc]);
        }
        // backward of this row
        const double* go = &dO[size_t(row * Dv)];
        double di = 0, dia = 0;
        for (int64_t cc = 0; cc < Dv; cc++) di += go[cc] * o[cc], dia += std::fabs(go[cc]) * oa[cc];
        for (int64_t j = 0; j < Tk; j++) {
          const double p = std::exp(s[size_t(j)] - lse);
          if (p == 0) continue;
          const int64_t kr = (b * H + h) * Tk + j;
          const double* v = &Vv[size_t(kr * Dv)];
          const double* k = &K[size_t(kr * D)];
          double dp = 0, dpa = 0;
          for (int64_t cc = 0; cc < Dv; cc++) {
            rdV[size_t(kr * Dv + cc)] += p * z[size_t(j)] * go[cc];
            adV[size_t(kr * Dv + cc)] += p * z[size_t(j)] * std::fabs(go[cc]);
            dp += go[cc] * v[cc];
            dpa += std::fabs(go[cc] * v[cc]);
          }
          const double ds = p * (dp * z[size_t(j)] - di) * scale;
          const double dsa = p * (dpa * z[size_t(j)] + dia) * std::fabs(scale);
          for (int64_t cc = 0; cc < D; cc++) {
            rdQ[size_t(row * D + cc)] += ds * k[cc];
            rdK[size_t(kr * D + cc)] += ds * q[cc];
            adQ[size_t(row * D + cc)] += dsa * std::fabs(k[cc]);
            adK[size_t(kr * D + cc)] += dsa * std::fabs(q[cc]);
          }
        }
        // dropout pattern: out[i][j] = p_ij·z_ij and dv[j][i] = p_ij·z_ij exactly zero where dropped
        if (c.identity)
          for (int64_t j = 0; j < Tk; j++) {
            const bool keep = !masked[size_t(j)] && z[size_t(j)] != 0 && s[size_t(j)] != -kInfD;
            const T ok = outb[size_t(LO[0].at(b, h, i) + j)];
            const T dvk = gbuf(2)[size_t(LG[2].at(b, h, j) + i)];
            e.pattern += (ok != 0) != keep;
            e.pattern += (dvk != 0) != keep;
          }
      }

  // ---- compare ----
  std::vector<char> cov_out(outb.size(), 0);
  e.out = compare(outb, LO[0], rO, aO, B, H, Tq, Dv, cov_out);
  e.sentinel += count_written_outside(outb, cov_out);
  for (size_t r = 0; r < rL.size(); r++) {
    const double x = double(lseb[r]), ref = rL[r];
    const double err = std::isfinite(ref) ? std::fabs(x - ref) / std::max(1.0, std::fabs(ref)) : (x == ref ? 0 : kInfD);
    e.lse = std::max(e.lse, err != err ? kInfD : err);
  }
  std::vector<std::vector<char>> cov(gb.size());
  for (size_t i = 0; i < gb.size(); i++) cov[i].assign(gb[i].size(), 0);
  auto gcov = [&](int i) -> std::vector<char>& { return cov[c.layout == PACKED ? 0 : size_t(i)]; };
  e.dq = compare(gbuf(0), LG[0], rdQ, adQ, B, H, Tq, D, gcov(0));
  e.dk = compare(gbuf(1), LG[1], rdK, adK, B, H, Tk, D, gcov(1));
  e.dv = compare(gbuf(2), LG[2], rdV, adV, B, H, Tk, Dv, gcov(2));
  for (size_t i = 0; i < gb.size(); i++) e.sentinel += count_written_outside(gb[i], cov[i]);
  return e;
}

// ---- cases ----------------------------------------------------------------------------------

Case random_case(std::mt19937_64& rng, int index) {
  auto pick = [&](std::initializer_list<int64_t> v) { return *(v.begin() + rng() % v.size()); };
  auto dim = [&](int64_t hi) {  // 1, ragged small, around tile sizes, large
    switch (rng() % 4) {
      case 0: return pick({1, 2, 3, 5, 7});
      case 1: return int64_t(1 + rng() % 40);
      case 2: return pick({63, 64, 65, 127, 128, 129});
      default: return int64_t(1 + rng() % uint64_t(hi));
    }
  };
  Case c;
  c.seed = rng();
  c.f64 = index % 2 == 1;
  c.B = 1 + int64_t(rng() % 3);
  c.H = 1 + int64_t(rng() % 3);
  c.Tq = dim(300);
  c.Tk = rng() % 3 == 0 ? c.Tq : dim(300);
  c.D = rng() % 3 == 0 ? pick({8, 16, 32, 64}) : int64_t(1 + rng() % 130);
  c.Dv = rng() % 2 ? c.D : int64_t(1 + rng() % 130);
  // keep a case near 2·10⁷ multiply-adds so the double reference stays quick
  while (c.B * c.H * c.Tq * c.Tk * (c.D + c.Dv) > 20000000) {
    if (c.B * c.H > 1) c.B > 1 ? c.B-- : c.H--;
    else if (c.D + c.Dv > 40) c.D = std::max<int64_t>(1, c.D / 2), c.Dv = std::max<int64_t>(1, c.Dv / 2);
    else c.Tq = std::max<int64_t>(1, c.Tq / 2);
  }
  c.layout = LayoutKind(rng() % NLAYOUTS);
  if (c.layout == PACKED) c.Tk = c.Tq;
  c.olayout = rng() % 2 ? BTHD : GAPS;
  c.causal = rng() % 2;
  c.coff = c.causal ? pick({-3, 0, c.Tk - c.Tq, c.Tk - c.Tq, int64_t(rng() % 20) - 10}) : 0;
  c.mask = int(rng() % 3);
  c.mask_kind = int(rng() % 4);
  c.mb = rng() % 2, c.mh = rng() % 2;
  c.p = double(pick({0, 0, 1, 2, 10})) / 10;
  if (c.p == 0.2) c.p = 0.5;
  return c;
}

// Dropout keep decisions, exactly: v and dout are identities, so out[i][j] and dv[j][i] are
// p_ij·z_ij, zero exactly where dropped.
Case identity_case(std::mt19937_64& rng, int index) {
  Case c;
  c.seed = rng();
  c.f64 = index % 2 == 1;
  c.identity = true;
  c.B = 1 + int64_t(rng() % 2), c.H = 1 + int64_t(rng() % 3);
  c.Tq = c.Tk = c.Dv = 1 + int64_t(rng() % 150);
  c.D = 1 + int64_t(rng() % 40);
  c.layout = LayoutKind(rng() % NLAYOUTS);
  c.olayout = rng() % 2 ? BTHD : GAPS;
  c.causal = rng() % 2;
  c.coff = c.causal ? int64_t(rng() % 7) - 3 : 0;
  const double ps[] = {0.1, 0.5, 1.0};
  c.p = ps[rng() % 3];
  c.boundary = index % 3 == 2;
  return c;
}

// cases everyone should see, before the random ones
std::vector<Case> fixed_cases() {
  std::vector<Case> v;
  auto add = [&](int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, int64_t Dv, LayoutKind lay, bool causal,
                 int64_t coff, int mask, double p) {
    for (int f = 0; f < 2; f++) {
      Case c;
      c.B = B, c.H = H, c.Tq = Tq, c.Tk = Tk, c.D = D, c.Dv = Dv, c.layout = lay, c.olayout = BTHD;
      c.causal = causal, c.coff = coff, c.mask = mask, c.p = p, c.f64 = f == 1;
      c.seed = uint64_t(v.size() * 7919 + 17);
      v.push_back(c);
    }
  };
  add(1, 1, 1, 1, 1, 1, BHTD, false, 0, 0, 0);
  add(1, 1, 1, 1, 1, 1, BHTD, true, 0, 0, 0);
  add(1, 1, 1, 1, 1, 1, BHTD, true, -1, 0, 0);  // nothing to attend
  add(2, 3, 300, 300, 64, 64, PACKED, true, 0, 0, 0);
  add(2, 2, 300, 300, 32, 32, PACKED, true, 0, 0, 0.1);
  add(1, 2, 200, 300, 37, 19, BTHD, true, 100, 1, 0);   // bottom-right: cached keys
  add(1, 2, 130, 257, 130, 129, GAPS, true, -3, 2, 0.5);
  add(2, 2, 257, 129, 16, 48, BHTD, false, 0, 1, 1.0);
  add(1, 1, 300, 300, 5, 3, GAPS, true, -299, 0, 0.5);  // only the last query sees a key
  add(1, 1, 65, 300, 128, 128, BTHD, true, 235, 2, 0);
  add(1, 2, 5, 0, 8, 8, BHTD, false, 0, 0, 0.5);  // no keys: lse −∞, out 0, dq 0
  add(1, 2, 0, 5, 8, 8, BHTD, true, 0, 1, 0.5);   // no queries: dk, dv 0
  return v;
}

// ---- timing ---------------------------------------------------------------------------------

// this thread's CPU time in ms (the kernels run on it; unlike wall time, it does not count
// the time other processes on a shared machine take the core)
double cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e3 + double(t.tv_nsec) * 1e-6;
}

// whether every word of `filter` occurs in `name`
bool matches(const std::string& name, const std::string& filter) {
  size_t i = 0;
  while (i < filter.size()) {
    const size_t j = std::min(filter.find(' ', i), filter.size());
    if (j > i && name.find(filter.substr(i, j - i)) == std::string::npos) return false;
    i = j + 1;
  }
  return true;
}

// One timed configuration: its operands and its forward and backward calls.
struct Variant {
  std::string name;
  std::vector<float> qkv, out, lse, dout, g;
  kiln::AttentionArgs a{};
  kiln::AttentionBackwardArgs b{};
  bool old = false;  // the previous kernel (contiguous operands)
  int64_t BH = 0, T = 0, D = 0;
  double fwd = kInfD, bwd = kInfD;

  void forward() {
#ifdef KILN_ATTENTION_OLD
    if (old) {
      const int64_t n = BH * T * D;
      const float *q = qkv.data(), *k = q + n, *v = q + 2 * n;
      kiln_old_bridge::forward(q, k, v, out.data(), lse.data(), BH, T, D, D, a.scale, true);
      return;
    }
#endif
    kiln::Table t{};
    kiln::KILN_ISA::add_attention(t);
    t.attention(a);
  }
  void backward() {
#ifdef KILN_ATTENTION_OLD
    if (old) {
      const int64_t n = BH * T * D;
      const float *q = qkv.data(), *k = q + n, *v = q + 2 * n;
      kiln_old_bridge::backward(q, k, v, out.data(), lse.data(), dout.data(), g.data(), g.data() + n,
                                g.data() + 2 * n, BH, T, D, D, a.scale, true);
      return;
    }
#endif
    kiln::Table t{};
    kiln::KILN_ISA::add_attention(t);
    t.attention_backward(b);
  }
};

// The timing rows whose shape and layout match `filter` (all when empty): f32, causal, one
// thread. The variants of a shape run in turn, `reps` rounds, each keeping its best time, so
// that a shared machine's noise falls on all alike.
void bench(int reps, const std::string& filter) {
  g_threads = 1;
  struct Shape {
    const char* name;
    int64_t B, H, T, D;
  };
  const Shape shapes[] = {{"gpt   B=16 H=4 T=64 D=32", 16, 4, 64, 32}, {"long  B=1 H=4 T=1024 D=64", 1, 4, 1024, 64}};
  std::printf("\ntiming (f32, causal, one thread, best of %d rounds; ms of CPU time):\n", reps);
  std::printf("  %-28s %-12s %9s %9s\n", "shape", "layout", "fwd", "bwd");
  for (const Shape& s : shapes) {
    const int64_t B = s.B, H = s.H, T = s.T, D = s.D, BH = B * H, n = BH * T * D;
    std::vector<Variant> vs;
    // packed [B, T, 3·H·D] with out [B, T, H·D], then contiguous [B, H, T, D]; without and with
    // dropout; then the previous kernel on the contiguous operands
    const char* names[] = {"packed", "packed p=.1", "bhtd", "bhtd p=.1", "old kernel"};
    for (int k = 0; k < 5; k++) {
#ifndef KILN_ATTENTION_OLD
      if (k == 4) continue;
#endif
      if (!matches(std::string(s.name) + " " + names[k], filter)) continue;
      vs.emplace_back();
      Variant& v = vs.back();
      v.name = names[k];
      v.old = k == 4, v.BH = BH, v.T = T, v.D = D;
      const bool packed = k < 2;
      const double p = k % 2 == 1 && k < 4 ? 0.1 : 0;
      std::mt19937_64 rng(5);
      std::normal_distribution<float> normal(0, 1);
      const size_t un = size_t(n);
      v.qkv.resize(3 * un), v.out.resize(un), v.lse.resize(size_t(BH * T)), v.dout.resize(un), v.g.resize(3 * un);
      for (auto& x : v.qkv) x = normal(rng);
      for (auto& x : v.dout) x = normal(rng);
      auto F = [&](std::vector<float>& x) { return Buf{x.data(), int64_t(x.size()), kiln::F32}; };
      Ints st[3];
      int64_t off[3];
      for (int i = 0; i < 3; i++) {
        st[i] = packed ? ints({T * 3 * H * D, D, 3 * H * D, 1}) : ints({H * T * D, T * D, D, 1});
        off[i] = packed ? i * H * D : i * n;
      }
      const Ints ost = packed ? ints({T * H * D, D, H * D, 1}) : ints({H * T * D, T * D, D, 1});
      kiln::AttentionArgs& a = v.a;
      a.q = a.k = a.v = F(v.qkv);
      a.q_offset = off[0], a.k_offset = off[1], a.v_offset = off[2];
      a.q_strides = st[0], a.k_strides = st[1], a.v_strides = st[2];
      a.out = F(v.out), a.out_offset = 0, a.out_strides = ost, a.lse = F(v.lse);
      a.batch = B, a.heads = H, a.kv_heads = H, a.tq = T, a.tk = T, a.qk_dim = D, a.v_dim = D;
      a.scale = 1 / std::sqrt(double(D)), a.causal = true, a.causal_offset = 0;
      a.mask = Buf{nullptr, 0, kiln::F32}, a.mask_strides = ints({0, 0, 0, 0});
      a.dropout_threshold = dropout_threshold(p), a.dropout_scale = 1 / (1 - p), a.seed = 1234, a.dropout_offset = 0;
      kiln::AttentionBackwardArgs& b = v.b;
      b.q = b.k = b.v = a.q;
      b.q_offset = off[0], b.k_offset = off[1], b.v_offset = off[2];
      b.q_strides = st[0], b.k_strides = st[1], b.v_strides = st[2];
      b.out = a.out, b.out_offset = 0, b.out_strides = ost, b.lse = a.lse;
      b.dout = F(v.dout), b.dout_offset = 0, b.dout_strides = ost;
      b.dq = b.dk = b.dv = F(v.g);
      b.dq_offset = off[0], b.dk_offset = off[1], b.dv_offset = off[2];
      b.dq_strides = st[0], b.dk_strides = st[1], b.dv_strides = st[2];
      b.batch = B, b.heads = H, b.kv_heads = H, b.tq = T, b.tk = T, b.qk_dim = D, b.v_dim = D;
      b.scale = a.scale, b.causal = true, b.causal_offset = 0, b.mask = a.mask, b.mask_strides = a.mask_strides;
      b.dropout_threshold = a.dropout_threshold, b.dropout_scale = a.dropout_scale, b.seed = a.seed;
      b.dropout_offset = a.dropout_offset;
    }
    for (Variant& v : vs) v.forward(), v.backward();  // warm up
    for (int r = 0; r < reps; r++)
      for (Variant& v : vs) {
        double t0 = cpu_ms();
        v.forward();
        const double t1 = cpu_ms();
        v.backward();
        v.fwd = std::min(v.fwd, t1 - t0), v.bwd = std::min(v.bwd, cpu_ms() - t1);
      }
    for (const Variant& v : vs) std::printf("  %-28s %-12s %9.3f %9.3f\n", s.name, v.name.c_str(), v.fwd, v.bwd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int ncases = 400, reps = 20;
  std::string filter;
  uint64_t seed = 1;
  bool run_bench = true, run_checks = true;
  for (int i = 1; i < argc; i++) {
    const std::string s = argv[i];
    if (s == "--cases" && i + 1 < argc) ncases = std::atoi(argv[++i]);
    else if (s == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (s == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (s == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (s == "--no-bench") run_bench = false;
    else if (s == "--bench-only") run_checks = false;
    else {
      std::fprintf(stderr, "attention_check: unknown option %s (--cases N, --seed S, --reps N, --filter SUBSTRING, --no-bench, --bench-only)\n", argv[i]);
      return 2;
    }
  }
  std::printf("attention_check: isa %s\n", KILN_STR(KILN_ISA));
  int failures = 0;
  if (run_checks) {
    std::mt19937_64 rng(seed);
    const int pbad = check_philox(rng);
    std::printf("philox: Random123 vectors and philox_words vs an independent Philox: %s\n", pbad ? "FAIL" : "ok");
    failures += pbad != 0;

    std::vector<Case> cases = fixed_cases();
    for (int i = 0; i < ncases; i++) cases.push_back(random_case(rng, i));
    for (int i = 0; i < std::max(8, ncases / 8); i++) cases.push_back(identity_case(rng, i));

    // rows of the table: dtype × mask × dropout
    struct Row {
      int n = 0;
      Errors max;
    } rows[2][3][2];
    int64_t pattern_checked = 0;
    const double tol[2] = {2e-5, 1e-12};  // f32, f64
    for (size_t i = 0; i < cases.size(); i++) cases[i].threads = int(i % 3 == 0 ? 1 : i % 3 == 1 ? 4 : 16);
    for (const Case& c : cases) {
      const Errors e = c.f64 ? run_case<double>(c) : run_case<float>(c);
      Row& r = rows[c.f64][c.mask][c.p > 0];
      r.n++;
      r.max.out = std::max(r.max.out, e.out), r.max.lse = std::max(r.max.lse, e.lse);
      r.max.dq = std::max(r.max.dq, e.dq), r.max.dk = std::max(r.max.dk, e.dk), r.max.dv = std::max(r.max.dv, e.dv);
      r.max.pattern += e.pattern, r.max.sentinel += e.sentinel;
      pattern_checked += c.identity;
      const double t = tol[c.f64];
      const bool bad = !(e.out <= t && e.lse <= t && e.dq <= t && e.dk <= t && e.dv <= t) || e.pattern || e.sentinel;
      if (bad) {
        if (failures < 20)
          std::printf("FAIL %s\n     out %.2e lse %.2e dq %.2e dk %.2e dv %.2e pattern %lld outside %lld\n",
                      describe(c).c_str(), e.out, e.lse, e.dq, e.dk, e.dv, (long long)e.pattern, (long long)e.sentinel);
        failures++;
      }
    }
    std::printf("\n%zu cases (%lld of them exact dropout-pattern checks); max error over each group "
                "(tolerance f32 %.0e, f64 %.0e):\n",
                cases.size(), (long long)pattern_checked, tol[0], tol[1]);
    std::printf("  %-5s %-9s %-8s %5s %9s %9s %9s %9s %9s %8s %8s\n", "dtype", "mask", "dropout", "cases", "out", "lse",
                "dq", "dk", "dv", "pattern", "outside");
    const char* masks[] = {"none", "bool", "additive"};
    for (int f = 0; f < 2; f++)
      for (int m = 0; m < 3; m++)
        for (int d = 0; d < 2; d++) {
          const Row& r = rows[f][m][d];
          if (!r.n) continue;
          std::printf("  %-5s %-9s %-8s %5d %9.2e %9.2e %9.2e %9.2e %9.2e %8lld %8lld\n", f ? "f64" : "f32", masks[m],
                      d ? "on" : "off", r.n, r.max.out, r.max.lse, r.max.dq, r.max.dk, r.max.dv,
                      (long long)r.max.pattern, (long long)r.max.sentinel);
        }
    std::printf("%s: %d failing case(s)\n", failures ? "FAIL" : "ok", failures);
  }
  if (run_bench) bench(reps, filter);
  return failures ? 1 : 0;
}

#endif  // KILN_ATTENTION_OLD_BRIDGE
