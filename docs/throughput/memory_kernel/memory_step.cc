// The memory part of an NTM time step as two XLA FFI kernels for the CPU:
// NtmMemoryStep (forward) and NtmMemoryStepVjp (its backward). They compute
// what `ntm_jax/models/memory_step.py` `step` and `step_vjp` compute (the
// same equations in the same order, rounded differently) in one call per
// time step instead of dozens of small XLA kernels.
//
// The sequences of a batch sit in the vector lanes: the memory and the
// weightings are stored batch-minor, so every operation of the step, the
// reductions over rows and the per-head scalars included, runs on L
// sequences at once with no horizontal work. Each sequence's numbers do
// not depend on its lane or its neighbours (every lane runs the same
// instructions on its own data, in the same order).
//
// Layouts (row-major, after any leading batch dimensions; L = the batch):
//   columns [M, N, L]  the memory stored by columns (ntm_jax/models/memory.py)
//   read_prev [R, N, L], write_prev [W, N, L]  the weightings
//   raw [L, P]  the head layer's output: R then W addressing blocks of
//       A = M + 3 + S values (key, beta, gate, shift logits, gamma), then W
//       erase and W add vectors of M (heads.split_head_outputs)
//   read_vectors [L, R, M]
//   saved [SavedSize, L]  what the forward keeps for the backward
// Equation numbers are Graves, Wayne & Danihelka (2014).
//
// No -ffast-math: NaN and Inf keep IEEE semantics, so a diverging seed is
// still seen as non-finite by the training step. exp and log are
// polynomial approximations (about 2 ulp) written so that the compiler
// vectorises them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

#define NTM_PRAGMA(x) _Pragma(#x)
#define SIMD NTM_PRAGMA(omp simd)
// A loop over the lanes: the innermost loop of every operation below.
#define LANES SIMD for (int64_t l = 0; l < L; ++l)

namespace {

constexpr float kNormEps = 1e-8f;     // addressing.NORM_EPS
constexpr float kSharpenEps = 1e-8f;  // addressing.SHARPEN_EPS

enum Activation : int64_t { kLinear = 0, kTanh = 1, kRelu = 2 };

// Bit casts the vectoriser understands (memcpy-based ones it does not).
inline float BitsToFloat(int32_t bits) { return __builtin_bit_cast(float, bits); }
inline int32_t FloatToBits(float f) { return __builtin_bit_cast(int32_t, f); }

// exp(x): Cody-Waite range reduction x = n ln2 + r, a degree-6 polynomial
// for exp(r), scaled by 2^n. Arguments are clamped to the range where
// 2^n is a normal float; NaN propagates through r.
inline float Exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // Round to nearest by adding and subtracting 1.5 * 2^23 (std::floor
  // does not vectorise without -fno-trapping-math).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  return y * BitsToFloat((static_cast<int32_t>(n) + 127) << 23);
}

// log(x) for x > 0 (NaN for NaN): x = m 2^e with m in [sqrt(1/2), sqrt(2)),
// a polynomial in m - 1.
inline float Log(float x) {
  const int32_t bits = FloatToBits(x);
  int32_t e = ((bits >> 23) & 0xff) - 126;
  float m = BitsToFloat((bits & 0x007fffff) | 0x3f000000);  // in [0.5, 1)
  // Branch-free (the vectoriser rejects these selects): for m < sqrt(1/2)
  // take 2m and one less in the exponent.
  const float small = m < 0.707106781186547524f ? 1.0f : 0.0f;
  e -= static_cast<int32_t>(small);
  m = m + small * m - 1.0f;
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  const float fe = static_cast<float>(e);
  float y = p * m * z;
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  // x - x is 0, or NaN for a NaN (or infinite) x, which then propagates.
  return m + y + 0.693359375f * fe + (x - x);
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + Exp(-x)); }

// log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), as jax.nn.softplus.
inline float Softplus(float x) {
  const float u = Exp(-std::fabs(x));
  const float one_plus = 1.0f + u;
  // log1p(u) = log(1 + u) * u / ((1 + u) - 1): exact where 1 + u rounds.
  const float log1p = one_plus == 1.0f ? u : Log(one_plus) * u / (one_plus - 1.0f);
  return (x > 0.0f ? x : 0.0f) + log1p;
}

inline float Tanh(float x) {
  const float ax = std::fabs(x);
  // Small arguments: an odd polynomial (no cancellation); else via exp.
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float e = Exp(-2.0f * ax);
  const float big = std::copysign((1.0f - e) / (1.0f + e), x);
  return ax < 0.625f ? small : big;
}

// out[i] = the activation of in[i]: the kind chosen outside the loop, so
// that each loop vectorises.
void Activate(const float* in, int64_t size, int64_t kind, float* out) {
  if (kind == kTanh) {
    SIMD for (int64_t i = 0; i < size; ++i) out[i] = Tanh(in[i]);
  } else if (kind == kRelu) {
    SIMD for (int64_t i = 0; i < size; ++i) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
  } else {
    for (int64_t i = 0; i < size; ++i) out[i] = in[i];
  }
}

// d Activate / dx from the activation's output.
inline float ActivationGrad(float value, int64_t kind) {
  if (kind == kTanh) return 1.0f - value * value;
  if (kind == kRelu) return value > 0.0f ? 1.0f : 0.0f;
  return 1.0f;
}

struct Dims {
  int64_t R, W, M, N, S, P, A;
  float clip;
  int64_t key_activation, add_activation;
  bool forward_only_shift;
};

// The forward's results the backward needs, laid out in one block of
// `Size(d)` rows of L lanes (the `saved` output), each field [..., L].
struct Saved {
  float *clipped;   // [P]  the raw outputs after clipping
  float *key;       // [H, M]  activated keys (H = R + W: read heads first)
  float *beta, *gate, *gamma, *key_norm;  // [H] each
  float *shift;     // [H, S]  shift distributions
  float *erase, *add;  // [W, M]
  float *stages;    // [H, 6, N]  cos, content, gated, shifted, log(shifted + eps), w
  float *norms;     // [2, N]  location norms before and after the write

  static int64_t Size(const Dims& d) {
    const int64_t H = d.R + d.W;
    return d.P + H * (d.M + 4 + d.S) + 2 * d.W * d.M + H * 6 * d.N + 2 * d.N;
  }

  Saved(const Dims& d, float* base, int64_t L) {
    const int64_t H = d.R + d.W;
    float* p = base;
    auto take = [&](int64_t rows) { float* q = p; p += rows * L; return q; };
    clipped = take(d.P);
    key = take(H * d.M);
    beta = take(H);
    gate = take(H);
    gamma = take(H);
    key_norm = take(H);
    shift = take(H * d.S);
    erase = take(d.W * d.M);
    add = take(d.W * d.M);
    stages = take(H * 6 * d.N);
    norms = take(2 * d.N);
  }
};

enum Stage { kCos = 0, kContent, kGated, kShifted, kLogShifted, kW };

// Scratch of one block of L sequences.
struct Scratch {
  std::vector<float> own_saved, new_columns, lanes, rows_a, rows_b, rows_c, rows_d, ct_new,
      ct_keep, write_w, ct_write_w, ct_w, ct_shift, ct_raw;
  Scratch(const Dims& d, int64_t L) {
    own_saved.resize(Saved::Size(d) * L);
    new_columns.resize(d.M * d.N * L);
    lanes.resize(8 * L);
    rows_a.resize(d.N * L);
    rows_b.resize(d.N * L);
    rows_c.resize(d.N * L);
    rows_d.resize(d.N * L);
    ct_new.resize(d.M * d.N * L);
    ct_keep.resize(d.M * d.N * L);
    write_w.resize(d.W * d.N * L);
    ct_write_w.resize(d.W * d.N * L);
    ct_w.resize(d.N * L);
    ct_shift.resize(d.S * L);
    ct_raw.resize(d.P * L);
  }
};

// Section 3.3's constraints on the raw outputs raw [L, P], into `sv`.
template <int64_t kL>
void Constrain(const Dims& d, int64_t L_, const float* raw, const Saved& sv, float* lanes) {
  const int64_t L = kL ? kL : L_, M = d.M, S = d.S, k = S / 2;
  for (int64_t i = 0; i < d.P; ++i) {
    float* c = sv.clipped + i * L;
    LANES {
      const float v = raw[l * d.P + i];
      c[l] = v < -d.clip ? -d.clip : (v > d.clip ? d.clip : v);
    }
  }
  float* top = lanes;
  float* total = lanes + L;
  for (int64_t h = 0; h < d.R + d.W; ++h) {
    const float* block = sv.clipped + h * d.A * L;
    Activate(block, M * L, d.key_activation, sv.key + h * M * L);
    float* beta = sv.beta + h * L;
    float* gate = sv.gate + h * L;
    float* gamma = sv.gamma + h * L;
    const float* raw_beta = block + M * L;
    const float* raw_gate = block + (M + 1) * L;
    const float* raw_gamma = block + (M + 2 + S) * L;
    LANES {
      beta[l] = Softplus(raw_beta[l]);
      gate[l] = Sigmoid(raw_gate[l]);
      gamma[l] = 1.0f + Softplus(raw_gamma[l]);
    }
    // Softmax over the shifts; forward_only_shift gives the negative ones
    // probability exactly 0.
    const float* logits = block + (M + 2) * L;
    float* shift = sv.shift + h * S * L;
    const int64_t first = d.forward_only_shift ? k : 0;
    LANES top[l] = -std::numeric_limits<float>::infinity();
    for (int64_t j = first; j < S; ++j) LANES top[l] = logits[j * L + l] > top[l] ? logits[j * L + l] : top[l];
    LANES total[l] = 0.0f;
    for (int64_t j = 0; j < S; ++j) {
      if (j < first) {
        LANES shift[j * L + l] = 0.0f;
        continue;
      }
      LANES {
        shift[j * L + l] = Exp(logits[j * L + l] - top[l]);
        total[l] += shift[j * L + l];
      }
    }
    for (int64_t j = 0; j < S; ++j) LANES shift[j * L + l] = shift[j * L + l] / total[l];
  }
  const float* erase_raw = sv.clipped + (d.R + d.W) * d.A * L;
  const float* add_raw = erase_raw + d.W * M * L;
  SIMD for (int64_t i = 0; i < d.W * M * L; ++i) sv.erase[i] = Sigmoid(erase_raw[i]);
  Activate(add_raw, d.W * M * L, d.add_activation, sv.add);
}

// norms[n] = sqrt(sum_m columns[m, n]^2 + eps), per lane.
template <int64_t kL>
void LocationNorms(const Dims& d, int64_t L_, const float* columns, float* norms) {
  const int64_t L = kL ? kL : L_, N = d.N;
  SIMD for (int64_t i = 0; i < N * L; ++i) norms[i] = 0.0f;
  for (int64_t m = 0; m < d.M; ++m) {
    const float* c = columns + m * N * L;
    SIMD for (int64_t i = 0; i < N * L; ++i) norms[i] += c[i] * c[i];
  }
  SIMD for (int64_t i = 0; i < N * L; ++i) norms[i] = std::sqrt(norms[i] + kNormEps);
}

// out[i] = sum_j weights[j] in[(i - (j - k)) mod N] (eq. 8), or with
// `transpose` its adjoint, out[i] = sum_j weights[j] in[(i + (j - k)) mod N].
template <int64_t kL>
void CircularShift(const Dims& d, int64_t L_, const float* weights, const float* in, float* out,
                   bool transpose) {
  const int64_t L = kL ? kL : L_, N = d.N, k = d.S / 2;
  SIMD for (int64_t i = 0; i < N * L; ++i) out[i] = 0.0f;
  for (int64_t j = 0; j < d.S; ++j) {
    const float* s = weights + j * L;
    int64_t offset = transpose ? (k - j) : (j - k);  // out[i] += s in[i - offset]
    offset = ((offset % N) + N) % N;
    for (int64_t i = 0; i < N; ++i) {
      const float* src = in + ((i - offset + N) % N) * L;
      float* dst = out + i * L;
      LANES dst[l] += s[l] * src[l];
    }
  }
}

// Softmax over the N rows of x [N, L], per lane, in place (jax.nn.softmax:
// exp(x - max) / sum).
template <int64_t kL>
void Softmax(int64_t N, int64_t L_, float* x, float* lanes) {
  const int64_t L = kL ? kL : L_;
  float* top = lanes;
  float* total = lanes + L;
  LANES top[l] = x[l];
  for (int64_t n = 1; n < N; ++n) LANES top[l] = x[n * L + l] > top[l] ? x[n * L + l] : top[l];
  LANES total[l] = 0.0f;
  for (int64_t n = 0; n < N; ++n) {
    float* row = x + n * L;
    LANES {
      row[l] = Exp(row[l] - top[l]);
      total[l] += row[l];
    }
  }
  for (int64_t n = 0; n < N; ++n) LANES x[n * L + l] = x[n * L + l] / total[l];
}

inline float* StageOf(const Dims& d, const Saved& sv, int64_t L, int64_t head, Stage stage) {
  return sv.stages + ((head * 6 + stage) * d.N) * L;
}

// Eqs. 5-9 for head h on `columns` [M, N, L] with location norms `norms`.
template <int64_t kL>
void Address(const Dims& d, int64_t L_, const float* columns, const float* norms,
             const float* w_prev, int64_t h, const Saved& sv, float* lanes) {
  const int64_t L = kL ? kL : L_, N = d.N, M = d.M;
  const float* key = sv.key + h * M * L;
  float* key_norm = sv.key_norm + h * L;
  const float* beta = sv.beta + h * L;
  const float* gate = sv.gate + h * L;
  const float* gamma = sv.gamma + h * L;
  float* cos = StageOf(d, sv, L, h, kCos);
  float* content = StageOf(d, sv, L, h, kContent);
  float* gated = StageOf(d, sv, L, h, kGated);
  float* shifted = StageOf(d, sv, L, h, kShifted);
  float* log_shifted = StageOf(d, sv, L, h, kLogShifted);
  float* w = StageOf(d, sv, L, h, kW);
  LANES key_norm[l] = 0.0f;
  for (int64_t m = 0; m < M; ++m) LANES key_norm[l] += key[m * L + l] * key[m * L + l];
  LANES key_norm[l] = std::sqrt(key_norm[l] + kNormEps);
  SIMD for (int64_t i = 0; i < N * L; ++i) cos[i] = 0.0f;
  for (int64_t m = 0; m < M; ++m) {
    const float* c = columns + m * N * L;
    const float* km = key + m * L;
    for (int64_t n = 0; n < N; ++n) LANES cos[n * L + l] += km[l] * c[n * L + l];
  }
  for (int64_t n = 0; n < N; ++n) LANES {
    cos[n * L + l] = cos[n * L + l] / (norms[n * L + l] * key_norm[l]);
    content[n * L + l] = beta[l] * cos[n * L + l];
  }
  Softmax<kL>(N, L, content, lanes);  // eq. 5
  for (int64_t n = 0; n < N; ++n) LANES  // eq. 7
    gated[n * L + l] = gate[l] * content[n * L + l] + (1.0f - gate[l]) * w_prev[n * L + l];
  CircularShift<kL>(d, L, sv.shift + h * d.S * L, gated, shifted, false);  // eq. 8
  for (int64_t n = 0; n < N; ++n) LANES {  // eq. 9 as softmax(gamma log(w + eps))
    log_shifted[n * L + l] = Log(shifted[n * L + l] + kSharpenEps);
    w[n * L + l] = gamma[l] * log_shifted[n * L + l];
  }
  Softmax<kL>(N, L, w, lanes);
}

// Eqs. 3-4 with W heads (every head erases, then every head adds):
// out [M, N, L] from columns and the write weightings write_w [W, N, L].
template <int64_t kL>
void Write(const Dims& d, int64_t L_, const float* columns, const float* write_w,
           const Saved& sv, float* out) {
  const int64_t L = kL ? kL : L_, N = d.N, M = d.M;
  for (int64_t m = 0; m < M; ++m) {
    const float* c = columns + m * N * L;
    float* o = out + m * N * L;
    const float* e0 = sv.erase + m * L;
    for (int64_t n = 0; n < N; ++n) LANES o[n * L + l] = 1.0f - e0[l] * write_w[n * L + l];
    for (int64_t h = 1; h < d.W; ++h) {
      const float* e = sv.erase + (h * M + m) * L;
      const float* w = write_w + h * N * L;
      for (int64_t n = 0; n < N; ++n) LANES o[n * L + l] *= 1.0f - e[l] * w[n * L + l];
    }
    SIMD for (int64_t i = 0; i < N * L; ++i) o[i] *= c[i];
    for (int64_t h = 0; h < d.W; ++h) {
      const float* a = sv.add + (h * M + m) * L;
      const float* w = write_w + h * N * L;
      for (int64_t n = 0; n < N; ++n) LANES o[n * L + l] += a[l] * w[n * L + l];
    }
  }
}

// The forward of one block: fills `sv` and sc->new_columns.
template <int64_t kL>
void Forward(const Dims& d, int64_t L_, const float* columns, const float* read_prev,
             const float* write_prev, const float* raw, const Saved& sv, Scratch* sc) {
  const int64_t L = kL ? kL : L_, NL = d.N * L;
  float* lanes = sc->lanes.data();
  Constrain<kL>(d, L, raw, sv, lanes);
  LocationNorms<kL>(d, L, columns, sv.norms);
  for (int64_t h = 0; h < d.W; ++h) {
    Address<kL>(d, L, columns, sv.norms, write_prev + h * NL, d.R + h, sv, lanes);
    const float* w = StageOf(d, sv, L, d.R + h, kW);
    std::copy(w, w + NL, sc->write_w.begin() + h * NL);
  }
  Write<kL>(d, L, columns, sc->write_w.data(), sv, sc->new_columns.data());
  LocationNorms<kL>(d, L, sc->new_columns.data(), sv.norms + NL);
  for (int64_t h = 0; h < d.R; ++h)
    Address<kL>(d, L, sc->new_columns.data(), sv.norms + NL, read_prev + h * NL, h, sv, lanes);
}

// The cotangents of head h's addressing and its constraints. Adds into
// ct_columns [M, N, L]; writes ct_w_prev [N, L] and the cotangents of the
// clipped raw block ct_raw [A, L].
template <int64_t kL>
void AddressVjp(const Dims& d, int64_t L_, const float* columns, const float* norms,
                const float* w_prev, int64_t h, const Saved& sv, const float* ct_w,
                Scratch* sc, float* ct_columns, float* ct_w_prev, float* ct_raw) {
  const int64_t L = kL ? kL : L_, N = d.N, M = d.M, S = d.S, k = S / 2;
  const float* key = sv.key + h * M * L;
  const float* key_norm = sv.key_norm + h * L;
  const float* beta = sv.beta + h * L;
  const float* gate = sv.gate + h * L;
  const float* gamma = sv.gamma + h * L;
  const float* shift = sv.shift + h * S * L;
  const float* raw_block = sv.clipped + h * d.A * L;
  const float* cos = StageOf(d, sv, L, h, kCos);
  const float* content = StageOf(d, sv, L, h, kContent);
  const float* gated = StageOf(d, sv, L, h, kGated);
  const float* shifted = StageOf(d, sv, L, h, kShifted);
  const float* log_shifted = StageOf(d, sv, L, h, kLogShifted);
  const float* w = StageOf(d, sv, L, h, kW);
  float* dot = sc->lanes.data();
  float* ct_gamma = dot + L;
  float* ct_gate = dot + 2 * L;
  float* ct_beta = dot + 3 * L;
  float* ct_cc_total = dot + 4 * L;
  float* scale = dot + 5 * L;
  float* ct_logits = sc->rows_a.data();
  float* ct_shifted = sc->rows_b.data();
  float* ct_gated = sc->rows_c.data();
  float* ct_shift = sc->ct_shift.data();
  // Eq. 9.
  LANES dot[l] = 0.0f;
  for (int64_t n = 0; n < N; ++n) LANES dot[l] += w[n * L + l] * ct_w[n * L + l];
  LANES ct_gamma[l] = 0.0f;
  for (int64_t n = 0; n < N; ++n) LANES {
    const int64_t i = n * L + l;
    ct_logits[i] = w[i] * (ct_w[i] - dot[l]);
    ct_gamma[l] += ct_logits[i] * log_shifted[i];
    ct_shifted[i] = ct_logits[i] * gamma[l] / (shifted[i] + kSharpenEps);
  }
  // Eq. 8: the shift weights' cotangent, and the adjoint shift.
  for (int64_t j = 0; j < S; ++j) {
    const int64_t offset = ((j - k) % N + N) % N;
    float* total = ct_shift + j * L;
    LANES total[l] = 0.0f;
    for (int64_t i = 0; i < N; ++i) {
      const float* g = gated + ((i - offset + N) % N) * L;
      LANES total[l] += ct_shifted[i * L + l] * g[l];
    }
  }
  CircularShift<kL>(d, L, shift, ct_shifted, ct_gated, true);
  // Eq. 7.
  LANES ct_gate[l] = 0.0f;
  for (int64_t n = 0; n < N; ++n) LANES {
    const int64_t i = n * L + l;
    ct_gate[l] += ct_gated[i] * (content[i] - w_prev[i]);
    ct_w_prev[i] = (1.0f - gate[l]) * ct_gated[i];
  }
  // Eqs. 5-6: softmax of beta * cos, then the cosine.
  LANES dot[l] = 0.0f;
  for (int64_t n = 0; n < N; ++n) LANES dot[l] += content[n * L + l] * gate[l] * ct_gated[n * L + l];
  float* ct_dots = sc->rows_a.data();  // ct_logits is no longer needed
  float* ct_cc = sc->rows_b.data();    // nor is ct_shifted
  LANES ct_beta[l] = 0.0f;
  LANES ct_cc_total[l] = 0.0f;
  for (int64_t n = 0; n < N; ++n) LANES {
    const int64_t i = n * L + l;
    const float ct_scores = content[i] * (gate[l] * ct_gated[i] - dot[l]);
    ct_beta[l] += ct_scores * cos[i];
    const float ct_cos = beta[l] * ct_scores;
    ct_dots[i] = ct_cos / (norms[i] * key_norm[l]);
    ct_cc[i] = ct_cos * cos[i];
    ct_cc_total[l] += ct_cc[i];
  }
  LANES scale[l] = ct_cc_total[l] / (key_norm[l] * key_norm[l]);
  SIMD for (int64_t i = 0; i < N * L; ++i) ct_cc[i] = ct_cc[i] / (norms[i] * norms[i]);
  for (int64_t m = 0; m < M; ++m) {
    const float* c = columns + m * N * L;
    float* ct_c = ct_columns + m * N * L;
    const float* km = key + m * L;
    float* ct_key = ct_raw + m * L;
    LANES ct_key[l] = 0.0f;
    for (int64_t n = 0; n < N; ++n) LANES {
      const int64_t i = n * L + l;
      ct_key[l] += ct_dots[i] * c[i];
      ct_c[i] += km[l] * ct_dots[i] - c[i] * ct_cc[i];
    }
    LANES ct_key[l] = (ct_key[l] - scale[l] * km[l]) * ActivationGrad(km[l], d.key_activation);
  }
  // The constraints of section 3.3.
  float* out_beta = ct_raw + M * L;
  float* out_gate = ct_raw + (M + 1) * L;
  float* out_gamma = ct_raw + (M + 2 + S) * L;
  LANES {
    out_beta[l] = ct_beta[l] * Sigmoid(raw_block[M * L + l]);
    out_gate[l] = ct_gate[l] * gate[l] * (1.0f - gate[l]);
    out_gamma[l] = ct_gamma[l] * Sigmoid(raw_block[(M + 2 + S) * L + l]);
  }
  LANES dot[l] = 0.0f;
  for (int64_t j = 0; j < S; ++j) LANES dot[l] += shift[j * L + l] * ct_shift[j * L + l];
  for (int64_t j = 0; j < S; ++j) LANES
    ct_raw[(M + 2 + j) * L + l] = shift[j * L + l] * (ct_shift[j * L + l] - dot[l]);
}

// The backward of one block, from what its forward saved.
template <int64_t kL>
void Backward(const Dims& d, int64_t L_, const float* columns, const float* read_prev,
              const float* write_prev, const float* raw, const Saved& sv,
              const float* ct_columns_new, const float* ct_read_w_in,
              const float* ct_write_w_in, const float* ct_read_vectors, Scratch* sc,
              float* ct_columns, float* ct_read_prev, float* ct_write_prev, float* ct_raw_out) {
  const int64_t L = kL ? kL : L_, N = d.N, M = d.M, NL = N * L, MNL = M * N * L;
  float* write_w = sc->write_w.data();
  for (int64_t h = 0; h < d.W; ++h) {
    const float* w = StageOf(d, sv, L, d.R + h, kW);
    std::copy(w, w + NL, write_w + h * NL);
  }
  float* new_columns = sc->new_columns.data();
  Write<kL>(d, L, columns, write_w, sv, new_columns);
  float* ct_new = sc->ct_new.data();
  std::copy(ct_columns_new, ct_columns_new + MNL, ct_new);
  float* ct_raw = sc->ct_raw.data();  // [P, L]
  float* ct_w = sc->ct_w.data();
  // Eq. 2 and the read addressing, head by head.
  for (int64_t h = 0; h < d.R; ++h) {
    const float* w = StageOf(d, sv, L, h, kW);
    std::copy(ct_read_w_in + h * NL, ct_read_w_in + (h + 1) * NL, ct_w);
    for (int64_t m = 0; m < M; ++m) {
      const float* c = new_columns + m * NL;
      float* ct_c = ct_new + m * NL;
      for (int64_t n = 0; n < N; ++n) LANES {
        const float r = ct_read_vectors[(l * d.R + h) * M + m];
        ct_w[n * L + l] += r * c[n * L + l];
        ct_c[n * L + l] += r * w[n * L + l];
      }
    }
    AddressVjp<kL>(d, L, new_columns, sv.norms + NL, read_prev + h * NL, h, sv, ct_w, sc, ct_new,
                   ct_read_prev + h * NL, ct_raw + h * d.A * L);
  }
  // Eqs. 3-4.
  float* ct_erase = ct_raw + (d.R + d.W) * d.A * L;
  float* ct_add = ct_erase + d.W * M * L;
  float* ct_ww = sc->ct_write_w.data();
  std::copy(ct_write_w_in, ct_write_w_in + d.W * NL, ct_ww);
  float* ct_keep = sc->ct_keep.data();
  float* ct_e = sc->lanes.data();
  float* ct_a = ct_e + L;
  for (int64_t h = 0; h < d.W; ++h) {
    // The cotangent of head h's keep factor 1 - e w: ct_new * columns * the
    // other heads' factors.
    SIMD for (int64_t i = 0; i < MNL; ++i) ct_keep[i] = ct_new[i] * columns[i];
    for (int64_t other = 0; other < d.W; ++other) {
      if (other == h) continue;
      for (int64_t m = 0; m < M; ++m) {
        const float* e = sv.erase + (other * M + m) * L;
        const float* w = write_w + other * NL;
        float* o = ct_keep + m * NL;
        for (int64_t n = 0; n < N; ++n) LANES o[n * L + l] *= 1.0f - e[l] * w[n * L + l];
      }
    }
    const float* w = write_w + h * NL;
    float* ct_wh = ct_ww + h * NL;
    for (int64_t m = 0; m < M; ++m) {
      const float* o = ct_keep + m * NL;
      const float* g = ct_new + m * NL;
      const float* e = sv.erase + (h * M + m) * L;
      const float* a = sv.add + (h * M + m) * L;
      LANES ct_e[l] = 0.0f;
      LANES ct_a[l] = 0.0f;
      for (int64_t n = 0; n < N; ++n) LANES {
        const int64_t i = n * L + l;
        ct_wh[i] += a[l] * g[i] - e[l] * o[i];
        ct_e[l] -= o[i] * w[i];
        ct_a[l] += w[i] * g[i];
      }
      float* out_e = ct_erase + (h * M + m) * L;
      float* out_a = ct_add + (h * M + m) * L;
      LANES {
        out_e[l] = ct_e[l] * e[l] * (1.0f - e[l]);
        out_a[l] = ct_a[l] * ActivationGrad(a[l], d.add_activation);
      }
    }
  }
  // The memory before the write: ct_new times every keep factor.
  std::copy(ct_new, ct_new + MNL, ct_columns);
  for (int64_t h = 0; h < d.W; ++h) {
    for (int64_t m = 0; m < M; ++m) {
      const float* e = sv.erase + (h * M + m) * L;
      const float* w = write_w + h * NL;
      float* o = ct_columns + m * NL;
      for (int64_t n = 0; n < N; ++n) LANES o[n * L + l] *= 1.0f - e[l] * w[n * L + l];
    }
  }
  for (int64_t h = 0; h < d.W; ++h)
    AddressVjp<kL>(d, L, columns, sv.norms, write_prev + h * NL, d.R + h, sv, ct_ww + h * NL, sc,
                   ct_columns, ct_write_prev + h * NL, ct_raw + (d.R + h) * d.A * L);
  // Back to [L, P]; jnp.clip passes the cotangent only where the raw value
  // was not clipped.
  for (int64_t i = 0; i < d.P; ++i) {
    const float* c = sv.clipped + i * L;
    const float* g = ct_raw + i * L;
    LANES ct_raw_out[l * d.P + i] = c[l] == raw[l * d.P + i] ? g[l] : 0.0f;
  }
}

ffi::Error GetDims(const ffi::Buffer<ffi::F32>& columns, const ffi::Buffer<ffi::F32>& read_prev,
                   const ffi::Buffer<ffi::F32>& write_prev, const ffi::Buffer<ffi::F32>& raw,
                   int64_t shift_range, float head_clip, int64_t key_activation,
                   int64_t add_activation, bool forward_only_shift, Dims* d, int64_t* blocks,
                   int64_t* L) {
  auto cd = columns.dimensions(), rd = read_prev.dimensions(), wd = write_prev.dimensions(),
       pd = raw.dimensions();
  if (cd.size() < 3 || rd.size() < 3 || wd.size() < 3 || pd.size() < 2)
    return ffi::Error::InvalidArgument("ntm memory step: arguments of too low rank");
  *L = cd[cd.size() - 1];
  d->M = cd[cd.size() - 3];
  d->N = cd[cd.size() - 2];
  d->R = rd[rd.size() - 3];
  d->W = wd[wd.size() - 3];
  d->P = pd[pd.size() - 1];
  d->S = shift_range;
  d->A = d->M + 3 + d->S;
  d->clip = head_clip;
  d->key_activation = key_activation;
  d->add_activation = add_activation;
  d->forward_only_shift = forward_only_shift;
  if (*L < 1 || d->M < 1 || d->N < 1) return ffi::Error::InvalidArgument("ntm memory step: empty");
  *blocks = static_cast<int64_t>(columns.element_count()) / (d->M * d->N * *L);
  if (d->W < 1 || d->R < 0 || d->S < 1 || d->S % 2 != 1 || d->S > d->N ||
      d->P != (d->R + d->W) * d->A + 2 * d->W * d->M || pd[pd.size() - 2] != *L ||
      static_cast<int64_t>(raw.element_count()) != *blocks * *L * d->P ||
      static_cast<int64_t>(read_prev.element_count()) != *blocks * d->R * d->N * *L ||
      static_cast<int64_t>(write_prev.element_count()) != *blocks * d->W * d->N * *L)
    return ffi::Error::InvalidArgument("ntm memory step: inconsistent shapes");
  return ffi::Error::Success();
}

// Calls run(kL) with the lane count as a compile-time constant where it is
// one of the batch sizes specialised here (each lane loop is then a few
// whole vector instructions), else with 0 (any batch).
template <typename Run>
void WithLanes(int64_t L, Run run) {
  using std::integral_constant;
  if (L == 4) return run(integral_constant<int64_t, 4>());
  if (L == 8) return run(integral_constant<int64_t, 8>());
  if (L == 16) return run(integral_constant<int64_t, 16>());
  run(integral_constant<int64_t, 0>());
}

ffi::Error MemoryStepImpl(ffi::Buffer<ffi::F32> columns, ffi::Buffer<ffi::F32> read_prev,
                          ffi::Buffer<ffi::F32> write_prev, ffi::Buffer<ffi::F32> raw,
                          ffi::ResultBuffer<ffi::F32> new_columns,
                          ffi::ResultBuffer<ffi::F32> read_w, ffi::ResultBuffer<ffi::F32> write_w,
                          ffi::ResultBuffer<ffi::F32> read_vectors,
                          ffi::ResultBuffer<ffi::F32> saved, int64_t shift_range,
                          float head_clip, int64_t key_activation, int64_t add_activation,
                          bool forward_only_shift) {
  Dims d;
  int64_t blocks, L;
  ffi::Error err = GetDims(columns, read_prev, write_prev, raw, shift_range, head_clip,
                           key_activation, add_activation, forward_only_shift, &d, &blocks, &L);
  if (err.failure()) return err;
  const int64_t saved_size = Saved::Size(d) * L;
  // An empty `saved` (an evaluation, no backward to come): nothing kept.
  const bool save = saved->element_count() != 0;
  if (save && static_cast<int64_t>(saved->element_count()) != blocks * saved_size)
    return ffi::Error::InvalidArgument("ntm memory step: saved has the wrong size");
  Scratch sc(d, L);
  const int64_t M = d.M, N = d.N, NL = N * L, MNL = M * NL;
  WithLanes(L, [&](auto lanes) {
    constexpr int64_t kL = decltype(lanes)::value;
    for (int64_t b = 0; b < blocks; ++b) {
      Saved sv(d, save ? saved->typed_data() + b * saved_size : sc.own_saved.data(), L);
      Forward<kL>(d, L, columns.typed_data() + b * MNL, read_prev.typed_data() + b * d.R * NL,
                  write_prev.typed_data() + b * d.W * NL, raw.typed_data() + b * L * d.P, sv,
                  &sc);
      std::copy(sc.new_columns.begin(), sc.new_columns.end(), new_columns->typed_data() + b * MNL);
      std::copy(sc.write_w.begin(), sc.write_w.end(), write_w->typed_data() + b * d.W * NL);
      float* rv = read_vectors->typed_data() + b * L * d.R * M;
      float* total = sc.lanes.data();
      for (int64_t h = 0; h < d.R; ++h) {
        const float* w = StageOf(d, sv, L, h, kW);
        std::copy(w, w + NL, read_w->typed_data() + (b * d.R + h) * NL);
        // Eq. 2: r[m] = sum_n w[n] M'[m, n].
        for (int64_t m = 0; m < M; ++m) {
          const float* c = sc.new_columns.data() + m * NL;
          LANES total[l] = 0.0f;
          for (int64_t n = 0; n < N; ++n) LANES total[l] += w[n * L + l] * c[n * L + l];
          LANES rv[(l * d.R + h) * M + m] = total[l];
        }
      }
    }
  });
  return ffi::Error::Success();
}

ffi::Error MemoryStepVjpImpl(
    ffi::Buffer<ffi::F32> columns, ffi::Buffer<ffi::F32> read_prev,
    ffi::Buffer<ffi::F32> write_prev, ffi::Buffer<ffi::F32> raw, ffi::Buffer<ffi::F32> saved,
    ffi::Buffer<ffi::F32> ct_columns_new, ffi::Buffer<ffi::F32> ct_read_w,
    ffi::Buffer<ffi::F32> ct_write_w, ffi::Buffer<ffi::F32> ct_read_vectors,
    ffi::ResultBuffer<ffi::F32> ct_columns, ffi::ResultBuffer<ffi::F32> ct_read_prev,
    ffi::ResultBuffer<ffi::F32> ct_write_prev, ffi::ResultBuffer<ffi::F32> ct_raw,
    int64_t shift_range, float head_clip, int64_t key_activation, int64_t add_activation,
    bool forward_only_shift) {
  Dims d;
  int64_t blocks, L;
  ffi::Error err = GetDims(columns, read_prev, write_prev, raw, shift_range, head_clip,
                           key_activation, add_activation, forward_only_shift, &d, &blocks, &L);
  if (err.failure()) return err;
  const int64_t saved_size = Saved::Size(d) * L;
  if (static_cast<int64_t>(saved.element_count()) != blocks * saved_size)
    return ffi::Error::InvalidArgument("ntm memory step: saved has the wrong size");
  Scratch sc(d, L);
  const int64_t NL = d.N * L, MNL = d.M * NL;
  WithLanes(L, [&](auto lanes) {
    constexpr int64_t kL = decltype(lanes)::value;
    for (int64_t b = 0; b < blocks; ++b) {
      // The backward only reads the saved block.
      Saved sv(d, const_cast<float*>(saved.typed_data()) + b * saved_size, L);
      Backward<kL>(d, L, columns.typed_data() + b * MNL, read_prev.typed_data() + b * d.R * NL,
                   write_prev.typed_data() + b * d.W * NL, raw.typed_data() + b * L * d.P, sv,
                   ct_columns_new.typed_data() + b * MNL, ct_read_w.typed_data() + b * d.R * NL,
                   ct_write_w.typed_data() + b * d.W * NL,
                   ct_read_vectors.typed_data() + b * L * d.R * d.M, &sc,
                   ct_columns->typed_data() + b * MNL, ct_read_prev->typed_data() + b * d.R * NL,
                   ct_write_prev->typed_data() + b * d.W * NL,
                   ct_raw->typed_data() + b * L * d.P);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

// The number of rows of L floats the forward saves for the backward.
extern "C" int64_t NtmMemoryStepSavedSize(int64_t read_heads, int64_t write_heads,
                                          int64_t memory_width, int64_t memory_rows,
                                          int64_t shift_range) {
  Dims d{read_heads, write_heads, memory_width, memory_rows, shift_range, 0, 0, 0.0f, 0, 0,
         false};
  d.A = d.M + 3 + d.S;
  d.P = (d.R + d.W) * d.A + 2 * d.W * d.M;
  return Saved::Size(d);
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(NtmMemoryStep, MemoryStepImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("shift_range")
                                  .Attr<float>("head_clip")
                                  .Attr<int64_t>("key_activation")
                                  .Attr<int64_t>("add_activation")
                                  .Attr<bool>("forward_only_shift"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(NtmMemoryStepVjp, MemoryStepVjpImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("shift_range")
                                  .Attr<float>("head_clip")
                                  .Attr<int64_t>("key_activation")
                                  .Attr<int64_t>("add_activation")
                                  .Attr<bool>("forward_only_shift"));
