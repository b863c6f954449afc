// AMX tile GEMMs (kernels/amx.hpp, amx_q8.hpp, amx_gguf.hpp): the kernels on emulated tiles on
// every machine (bf16: against the bf16-rounded reference, the same bits for 1-3 threads and for
// fused products, the emulation's tdpbf16ps pinned to the architecture's order of sums; Q8 and the
// GGUF 4/5-bit formats with int8 activations: the kernel's own arithmetic bit for bit, the
// dequantised reference's value, 1-3 threads, the VNNI kernels' within f32 rounding (Q8) or bit for
// bit (the GGUF formats); tdpbssd
// pinned), and on the AMX unit itself where the CPU has one and the OS grants it (the same
// references; gemm's dispatch to it in the bf16-activation mode and for int8 prompts). Without AMX
// the other kernels run: test_bf16dot, test_kernels, test_quant4.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "fathom/kernels/linear.hpp"
#include "gguf_cases.hpp"
#include "thread_scope.hpp"

using namespace fathom;
namespace kk = fathom::kernels;
namespace kd = fathom::kernels::detail;

namespace {
struct Case {
  size_t rows, cols, n;
  std::vector<uint16_t> w;  // W [rows, cols] bf16
  std::vector<float> X;     // X [n, cols]
  Case(size_t r, size_t c, size_t m, unsigned seed) : rows(r), cols(c), n(m), w(r * c), X(m * c) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& v : w) v = f32_to_bf16(nd(rng));
    for (auto& v : X) v = nd(rng);
  }
  template <class Tiles> std::vector<float> run() const {
    std::vector<float> Y(n * rows, -1.f);  // every element must be written
    const kd::DenseProduct p{w.data(), rows, Y.data()};
    kd::gemm_amx_bf16<Tiles>(cols, X.data(), n, std::span<const kd::DenseProduct>(&p, 1));
    return Y;
  }
  // |Y - sum bf16(W) bf16(X)| within f32 summation error
  void check(const std::vector<float>& Y) const {
    for (size_t t = 0; t < n; ++t)
      for (size_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (size_t c = 0; c < cols; ++c) {
          const double p = double(bf16_to_f32(w[r * cols + c])) * bf16_to_f32(f32_to_bf16(X[t * cols + c]));
          ref += p;
          mag += std::fabs(p);
        }
        REQUIRE(std::fabs(Y[t * rows + r] - ref) <= 1e-5 * mag + 1e-30);
      }
  }
};

// The case's product at one thread, checked against the case's references; at 2 and 3 threads
// the same bits.
template <class Tiles, class CaseT> void check_any_threads(const CaseT& c) {
  std::vector<float> Y1;
  {
    ThreadScope one(1);
    Y1 = c.template run<Tiles>();
  }
  c.check(Y1);
  for (int threads = 2; threads <= 3; ++threads) {
    ThreadScope ts(threads);
    const std::vector<float> Y = c.template run<Tiles>();
    CHECK(std::memcmp(Y.data(), Y1.data(), Y.size() * 4) == 0);
  }
}

template <class Tiles> void check_kernel(const char* what) {
  // 70 rows: two whole 32-row panels and a partial one; columns: an odd tail pair, 16-pair steps
  // with and without zero padding, three K blocks (256 + 256 + 32 pairs, then + 38 padded to 48);
  // rows of X: one, a partial 32-row block, a whole one and a partial second
  for (size_t rows : {size_t(1), size_t(7), size_t(70)})
    for (size_t cols : {size_t(1), size_t(3), size_t(64), size_t(1001), size_t(1088), size_t(1100)})
      for (size_t n : {size_t(1), size_t(17), size_t(32), size_t(40)}) {
        CAPTURE(what);
        CAPTURE(rows);
        CAPTURE(cols);
        CAPTURE(n);
        const Case c(rows, cols, n, unsigned(rows * 7919 + cols * 31 + n));
        check_any_threads<Tiles>(c);
      }
}

// Two products sharing X (as q, k and v do) give each the bits of its own call.
template <class Tiles> void check_fused() {
  const Case a(40, 600, 35, 5), b(33, 600, 35, 6);
  std::vector<float> ya(35 * 40), yb(35 * 33);
  const kd::DenseProduct ps[2] = {{a.w.data(), 40, ya.data()}, {b.w.data(), 33, yb.data()}};
  ThreadScope ts(2);
  kd::gemm_amx_bf16<Tiles>(600, a.X.data(), 35, std::span<const kd::DenseProduct>(ps, 2));
  const Case b_with_a_X = [&] { Case c = b; c.X = a.X; return c; }();
  const std::vector<float> ra = a.template run<Tiles>(), rb = b_with_a_X.template run<Tiles>();
  CHECK(std::memcmp(ya.data(), ra.data(), ya.size() * 4) == 0);
  CHECK(std::memcmp(yb.data(), rb.data(), yb.size() * 4) == 0);
}
}  // namespace

namespace {
// A Q8 weight matrix and f32 activations for the AMX-INT8 kernel (amx_q8.hpp).
struct Q8Case {
  size_t rows, cols, n;
  kk::QuantizedMatrix W;
  std::vector<float> X;  // [n, cols]
  Q8Case(size_t r, size_t c, size_t m, unsigned seed) : rows(r), cols(c), n(m), X(m * c) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> w(r * c);
    for (auto& v : w) v = nd(rng);
    for (auto& v : X) v = nd(rng);
    W = kk::quantize_q8(kk::MatrixView{DType::F32, r, c, w.data()});
  }
  template <class Tiles, size_t G = kd::kAmxQ8Group> std::vector<float> run() const {
    std::vector<float> Y(n * rows, -1.f);  // every element must be written
    kd::gemm_amx_q8<Tiles, G>(W.view(), X.data(), n, Y.data());
    return Y;
  }
  // The kernel's arithmetic, element by element (amx_q8.hpp): exact int32 block dots, then one
  // chain acc = fma(dot, dw * dx, acc) in block order. Also checked: the value against the
  // dequantised weights times the quantised activations (double), and the VNNI / portable kernel
  // (another order of sums) within f32 rounding.
  void check(const std::vector<float>& Y) const {
    kd::Q8Acts acts;
    acts.assign(X.data(), n, cols);
    const kd::Q8Layout L = kd::q8_layout(W.view());
    std::vector<float> other(n * rows);
    {
      DecodeBitsPrompts vnni;
      kk::gemm(W.view(), X.data(), n, other.data());
    }
    for (size_t t = 0; t < n; ++t)
      for (size_t r = 0; r < rows; ++r) {
        float acc = 0.f;
        double ref = 0, mag = 0;
        for (size_t b = 0; b < L.nb; ++b) {
          int32_t dot = 0;
          for (size_t k = 0; k < 32; ++k) {
            const int q = int(L.qs[r * L.nb * 32 + b * 32 + k]) - 128, x = acts.qs[(t * L.nb + b) * 32 + k];
            dot += q * x;
            const double p = double(q) * f16_to_f32(L.d[r * L.nb + b]) * double(x) * acts.d[t * L.nb + b];
            ref += p;
            mag += std::fabs(p);
          }
          acc = std::fma(float(dot), f16_to_f32(L.d[r * L.nb + b]) * acts.d[t * L.nb + b], acc);
        }
        const float y = Y[t * rows + r];
        REQUIRE(std::bit_cast<uint32_t>(y) == std::bit_cast<uint32_t>(acc));
        REQUIRE(std::fabs(y - ref) <= 1e-5 * mag + 1e-30);
        REQUIRE(std::fabs(y - other[t * rows + r]) <= 1e-5 * mag + 1e-30);
      }
  }
};

template <class Tiles> void check_q8_kernel(const char* what) {
  // 70 rows: two whole 32-row panels and a partial one; columns: a partial block, one block, a
  // last block short, and 65 / 130 blocks (two and three chunks of 64); rows of X: one, a partial
  // 32-row block, a whole one and a partial second, and 544 (two passes of 512 rows)
  for (size_t rows : {size_t(1), size_t(7), size_t(70)})
    for (size_t cols : {size_t(5), size_t(32), size_t(1001), size_t(2080), size_t(4160)})
      for (size_t n : {size_t(1), size_t(17), size_t(32), size_t(40), size_t(544)}) {
        if (n == 544 && (rows != 70 || cols != 2080)) continue;
        CAPTURE(what);
        CAPTURE(rows);
        CAPTURE(cols);
        CAPTURE(n);
        const Q8Case c(rows, cols, n, unsigned(rows * 7919 + cols * 31 + n));
        check_any_threads<Tiles>(c);
      }
  // blocks rescaled one, two or four at a time (a chunk of 64 blocks and one more: partial
  // groups): the same order of sums, the same bits
  for (size_t cols : {size_t(2080), size_t(1001)}) {
    const Q8Case c(70, cols, 40, 11);
    const std::vector<float> y1 = c.template run<Tiles, 1>(), y2 = c.template run<Tiles, 2>(),
                             y4 = c.template run<Tiles, 4>();
    c.check(y1);
    CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * 4) == 0);
    CHECK(std::memcmp(y1.data(), y4.data(), y1.size() * 4) == 0);
  }
  // an infinite activation makes its row's products NaN, as in f32 and the other kernels
  Q8Case c(40, 100, 20, 3);
  c.X[5 * 100 + 60] = INFINITY;
  const std::vector<float> Y = c.template run<Tiles>();
  for (size_t t = 0; t < 20; ++t)
    for (size_t r = 0; r < 40; ++r) REQUIRE(std::isnan(Y[t * 40 + r]) == (t == 5));
}
}  // namespace

TEST_CASE("AMX-INT8 Q8 GEMM on emulated tiles: its arithmetic bit for bit, the reference's value, any thread count") {
  check_q8_kernel<kd::EmulatedTiles>("emulated tiles");
}

namespace {
// A GGUF 4- or 5-bit weight matrix (random blocks in the file layout, gguf_cases.hpp) and f32
// activations for the AMX-INT8 kernel (amx_gguf.hpp).
struct GgufCase {
  size_t rows, cols, n;
  gguf_test::Case g;
  std::vector<float> X;  // [n, cols]
  GgufCase(DType t, size_t r, size_t c, size_t m, unsigned seed) : rows(r), cols(c), n(m), X(m * c) {
    std::mt19937 rng(seed);
    g = gguf_test::make_case(t, r, c, rng);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& v : X) v = nd(rng);
  }
  template <class Tiles, size_t G = kd::kAmxQ8Group> std::vector<float> run() const {
    std::vector<float> Y(n * rows, -1.f);  // every element must be written
    kd::gemm_amx_gguf<Tiles, G>(g.M.view(), X.data(), n, Y.data());
    return Y;
  }
  // Block b (32 values) of row r read from the file's bytes: values, scale and minimum with
  // weight = s q + m (amx_gguf.hpp's table; GGUF's layouts, ggml's dequantize_row_*).
  struct Parts {
    int q[32];
    float s, m = 0.f;
  };
  Parts parts(size_t r, size_t b) const {
    const size_t bb = kk::gguf_block_bytes(g.t), row_bytes = cols / kk::gguf_block_elems(g.t) * bb;
    const uint8_t* row = g.raw.data() + r * row_bytes;
    const auto f16 = [](const uint8_t* p) { return kd::h2f(p); };
    Parts p;
    if (g.t == DType::Q4_K) {
      const uint8_t* sb = row + b / 8 * bb;
      const size_t k = b % 8;
      int sc, mn;
      kd::k4_scale_min(sb + 4, int(k), sc, mn);
      p.s = f16(sb) * float(sc);
      p.m = -(f16(sb + 2) * float(mn));
      for (size_t e = 0; e < 32; ++e) p.q[e] = k % 2 ? sb[16 + 32 * (k / 2) + e] >> 4 : sb[16 + 32 * (k / 2) + e] & 15;
      return p;
    }
    const uint8_t* blk = row + b * bb;
    const bool has_min = g.t == DType::Q4_1 || g.t == DType::Q5_1, five = g.t == DType::Q5_0 || g.t == DType::Q5_1;
    p.s = f16(blk);
    if (has_min) p.m = f16(blk + 2);
    uint32_t qh = 0;
    if (five) std::memcpy(&qh, blk + (has_min ? 4 : 2), 4);
    const uint8_t* qs = blk + (has_min ? 4 : 2) + (five ? 4 : 0);
    const int bias = g.t == DType::Q4_0 ? 8 : g.t == DType::Q5_0 ? 16 : 0;
    for (size_t j = 0; j < 16; ++j) {
      p.q[j] = int((qs[j] & 15) | ((qh >> j) & 1) << 4) - bias;
      p.q[j + 16] = int((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - bias;
    }
    return p;
  }
  // The kernel's arithmetic, element by element: exact int32 block dots of the values, then
  // acc = fma(dot, s dx, acc) and, with a minimum, acc = fma(m, sx, acc), in block order. Also
  // checked: each part against io::dequantize's weights, the value against those weights times the
  // quantised activations (double), and the VNNI / portable kernel: equal.
  void check(const std::vector<float>& Y) const {
    kd::Q8Acts acts;
    acts.assign(X.data(), n, cols);
    std::vector<float> other(n * rows);
    {
      DecodeBitsPrompts vnni;
      kk::gemm(g.M.view(), X.data(), n, other.data());
    }
    const size_t nb = cols / 32;
    std::vector<Parts> P(rows * nb);
    size_t off = 0;  // weights whose parts are not io::dequantize's value (to its f32 rounding)
    for (size_t r = 0; r < rows; ++r)
      for (size_t b = 0; b < nb; ++b) {
        const Parts& p = P[r * nb + b] = parts(r, b);
        for (size_t e = 0; e < 32; ++e) {
          const double w = double(p.s) * p.q[e] + p.m, size = std::fabs(double(p.s) * p.q[e]) + std::fabs(p.m);
          off += std::fabs(w - g.dq[r * cols + b * 32 + e]) > 1e-6 * size;
        }
      }
    REQUIRE(off == 0);
    const bool has_min = g.t != DType::Q4_0 && g.t != DType::Q5_0;
    for (size_t t = 0; t < n; ++t)
      for (size_t r = 0; r < rows; ++r) {
        float acc = 0.f;
        double ref = 0, mag = 0;
        for (size_t b = 0; b < nb; ++b) {
          const Parts& p = P[r * nb + b];
          const float dx = acts.d[t * nb + b];
          int32_t dot = 0;
          for (size_t e = 0; e < 32; ++e) {
            const int x = acts.qs[(t * nb + b) * 32 + e];
            dot += p.q[e] * x;
            ref += double(g.dq[r * cols + b * 32 + e]) * x * dx;
            mag += (std::fabs(double(p.s) * p.q[e]) + std::fabs(p.m)) * std::fabs(x * dx);
          }
          acc = std::fma(float(dot), p.s * dx, acc);
          if (has_min) acc = std::fma(p.m, acts.sx[t * nb + b], acc);
        }
        const float y = Y[t * rows + r];
        REQUIRE(std::bit_cast<uint32_t>(y) == std::bit_cast<uint32_t>(acc));
        REQUIRE(std::fabs(y - ref) <= 1e-5 * mag + 1e-30);
        REQUIRE(std::fabs(y - other[t * rows + r]) <= 1e-5 * mag + 1e-30);
        // the vector kernels sum in this order too (q4_groups.hpp, k4_groups.hpp): the same bits
        REQUIRE(std::bit_cast<uint32_t>(y) == std::bit_cast<uint32_t>(other[t * rows + r]));
      }
  }
};

const DType kAmxGguf[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K};

template <class Tiles> void check_gguf_kernel(const char* what) {
  // columns: one block (super-block), a last unpaired block (1056: 33), two chunks of 64 and one
  // block more (2080, Q4_K 2304: 72 blocks), three chunks (4160, Q4_K 4352)
  for (DType t : kAmxGguf) {
    const bool k = t == DType::Q4_K;
    for (size_t rows : {size_t(7), size_t(70)})
      for (size_t cols : {k ? size_t(256) : size_t(32), k ? size_t(2304) : size_t(1056),
                          k ? size_t(4352) : size_t(2080), k ? size_t(0) : size_t(4160)})
        for (size_t n : {size_t(1), size_t(17), size_t(40)}) {
          if (cols == 0 || (cols >= 2080 && rows == 7 && n != 17)) continue;
          CAPTURE(what);
          CAPTURE(dtype_name(t));
          CAPTURE(rows);
          CAPTURE(cols);
          CAPTURE(n);
          const GgufCase c(t, rows, cols, n, unsigned(rows * 7919 + cols * 31 + n + int(t)));
          check_any_threads<Tiles>(c);
        }
    // one, two or four blocks per rescale: the same bits (a partial last group)
    const GgufCase c(t, 40, k ? 2304 : 2080, 33, 12);
    const std::vector<float> y1 = c.template run<Tiles, 1>(), y4 = c.template run<Tiles, 4>();
    c.check(y4);
    CHECK(std::memcmp(y1.data(), y4.data(), y1.size() * 4) == 0);
  }
  // an infinite activation makes its row's products NaN
  GgufCase c(DType::Q4_K, 40, 512, 20, 3);
  c.X[5 * 512 + 300] = INFINITY;
  const std::vector<float> Y = c.template run<Tiles>();
  for (size_t t = 0; t < 20; ++t)
    for (size_t r = 0; r < 40; ++r) REQUIRE(std::isnan(Y[t * 40 + r]) == (t == 5));
}
}  // namespace

TEST_CASE("AMX-INT8 GGUF 4/5-bit GEMM on emulated tiles: its arithmetic bit for bit, the references, any thread count") {
  check_gguf_kernel<kd::EmulatedTiles>("emulated tiles");
}

TEST_CASE("emulated tdpbssd: signed bytes, 4-byte groups along A's rows and B's columns, int32 sums") {
  using E = kd::EmulatedTiles;
  alignas(64) int8_t a[16][64] = {}, b[16][64] = {};
  alignas(64) int32_t c[16][16] = {};
  // C[0][1] = a[0][0..3] . b[0][4..7] + a[0][4..7] . b[1][4..7]; A's byte 32 and B's row 8 lie
  // past the int8 configuration's tiles (16 x 32 bytes, 8 x 64 bytes) and are not read
  const int8_t a0[8] = {1, -2, 3, -128, 5, 6, 7, -8}, b0[4] = {-1, 2, 127, -128}, b1[4] = {1, 1, 1, 1};
  std::memcpy(a[0], a0, 8);
  std::memcpy(b[0] + 4, b0, 4);
  std::memcpy(b[1] + 4, b1, 4);
  b[8][4] = 100;
  a[0][32] = 1;
  c[0][1] = 7;
  E::configure(kd::amx_int8_tiles());
  E::load<0>(c, 64);
  E::load<4>(a, 64);
  E::load<6>(b, 64);
  E::dpbssd<0, 4, 6>();
  E::store<0>(c, 64);
  E::release();
  CHECK(c[0][1] == 7 + (-1 - 4 + 381 + 16384) + (5 + 6 + 7 - 8));
  CHECK(c[0][0] == 0);
  CHECK(c[1][1] == 0);
}

TEST_CASE("AMX tile GEMM on emulated tiles: bf16-rounded reference, same bits for any thread count") {
  check_kernel<kd::EmulatedTiles>("emulated tiles");
  check_fused<kd::EmulatedTiles>();
}

TEST_CASE("emulated tdpbf16ps: even and odd products summed apart, subnormal inputs read as zero") {
  using E = kd::EmulatedTiles;
  alignas(64) uint16_t a[16][32] = {}, b[16][32] = {};
  alignas(64) float c[16][16] = {};
  // row 0, column 0: pairs (1, 1) . (1, 2^-24), then (0, 1) . (0, 2^-24). Even and odd sums apart:
  // 1 + 2^-23 (the odd sum holds both small terms); one sum in k order would round each tie to 1.
  a[0][0] = a[0][1] = a[0][3] = f32_to_bf16(1.f);
  b[0][0] = f32_to_bf16(1.f);
  b[0][1] = b[1][1] = f32_to_bf16(0x1p-24f);
  // row 1, column 1: a subnormal bf16 input (2^-133) times 2^100 reads as zero (else 2^-33)
  a[1][0] = 0x0001;
  b[0][2] = f32_to_bf16(0x1p100f);
  c[1][0] = 0.5f;  // C's own values are kept as they are
  E::configure();
  E::load<0>(c, 64);
  E::load<4>(a, 64);
  E::load<6>(b, 64);
  E::dpbf16ps<0, 4, 6>();
  E::store<0>(c, 64);
  E::release();
  CHECK(c[0][0] == 1.f + 0x1p-23f);
  CHECK(c[0][1] == 0x1p100f);
  CHECK(c[1][0] == 0.5f);
  CHECK(c[1][1] == 0.f);
}

TEST_CASE("AMX tile GEMM on the AMX unit where the CPU has it; the switch and the fallback") {
  const kk::AmxSupport& s = kk::amx();
  {
    kk::set_amx_allowed(false);
    CHECK_FALSE(kk::amx_bf16_active());
    kk::set_amx_allowed(true);
  }
  CHECK(kk::amx_bf16_active() == (s.usable() && s.bf16));
  if (!kk::amx_bf16_active()) {
    MESSAGE("no AMX-BF16 granted here (tile " << s.tile << ", bf16 " << s.bf16 << ", permitted " << s.permitted
                                             << "): the hardware path is not run; the emulated one is");
    return;
  }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  check_kernel<kd::AmxTiles>("AMX unit");
  check_fused<kd::AmxTiles>();
  // gemm in the bf16-activation mode dispatches to the unit (from one row of X on)
  const Case c(70, 1001, 40, 9);
  const std::vector<float> direct = c.run<kd::AmxTiles>();
  std::vector<float> via(c.n * c.rows);
  const bool saved = kk::bf16_activations_requested();
  kk::set_bf16_activations(true);
  kk::gemm(kk::MatrixView{DType::BF16, c.rows, c.cols, c.w.data()}, c.X.data(), c.n, via.data());
  kk::set_bf16_activations(saved);
  CHECK(std::memcmp(direct.data(), via.data(), via.size() * 4) == 0);
  // the unit against its emulation: the same products and f32 sums, perhaps in another order
  const std::vector<float> emulated = c.run<kd::EmulatedTiles>();
  size_t same = 0;
  for (size_t i = 0; i < direct.size(); ++i) same += direct[i] == emulated[i];
  MESSAGE("AMX unit: " << same << " of " << direct.size() << " outputs equal to the emulation's bits");
#endif
}

TEST_CASE("AMX-INT8 Q8 GEMM on the AMX unit where the CPU has it; gemm's int8 prompts dispatch to it") {
  const kk::AmxSupport& s = kk::amx();
  CHECK(kk::amx_int8_active() == (s.usable() && s.int8));
  if (!kk::amx_int8_active()) {
    MESSAGE("no AMX-INT8 granted here (tile " << s.tile << ", int8 " << s.int8 << ", permitted " << s.permitted
                                             << "): the hardware path is not run; the emulated one is");
    return;
  }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  check_q8_kernel<kd::AmxTiles>("AMX unit");
  const Q8Case c(70, 1001, 40, 9);
  const std::vector<float> direct = c.run<kd::AmxTiles>(), emulated = c.run<kd::EmulatedTiles>();
  CHECK(std::memcmp(direct.data(), emulated.data(), direct.size() * 4) == 0);
  std::vector<float> via(c.n * c.rows);
  {
    PrefillScope int8_prompts(false);
    kk::gemm(c.W.view(), c.X.data(), c.n, via.data());
  }
  CHECK(std::memcmp(direct.data(), via.data(), via.size() * 4) == 0);
  // fewer rows than kAmxQ8MinRows stay on the VNNI kernel (decode's bits)
  const Q8Case few(70, 1001, kd::kAmxQ8MinRows - 1, 10);
  std::vector<float> yf(few.n * few.rows), yv(few.n * few.rows);
  {
    PrefillScope int8_prompts(false);
    kk::gemm(few.W.view(), few.X.data(), few.n, yf.data());
  }
  {
    DecodeBitsPrompts vnni;
    kk::gemm(few.W.view(), few.X.data(), few.n, yv.data());
  }
  CHECK(std::memcmp(yf.data(), yv.data(), yf.size() * 4) == 0);
#endif
}

TEST_CASE("AMX-INT8 GGUF 4/5-bit GEMM on the AMX unit where the CPU has it; gemm's int8 prompts dispatch to it") {
  if (!kk::amx_int8_active()) {
    MESSAGE("no AMX-INT8 granted here: the hardware path is not run; the emulated one is");
    return;
  }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  check_gguf_kernel<kd::AmxTiles>("AMX unit");
  for (DType t : kAmxGguf) {
    CAPTURE(dtype_name(t));
    const GgufCase c(t, 70, 2304, 40, 13);
    const std::vector<float> direct = c.run<kd::AmxTiles>(), emulated = c.run<kd::EmulatedTiles>();
    CHECK(std::memcmp(direct.data(), emulated.data(), direct.size() * 4) == 0);
    std::vector<float> via(c.n * c.rows);
    {
      PrefillScope int8_prompts(false);
      kk::gemm(c.g.M.view(), c.X.data(), c.n, via.data());
    }
    CHECK(std::memcmp(direct.data(), via.data(), via.size() * 4) == 0);
  }
  // Q6_K (16-value groups) stays on its VNNI kernel: decode's bits
  std::mt19937 rng(14);
  const gguf_test::Case q6 = gguf_test::make_case(DType::Q6_K, 40, 512, rng);
  std::vector<float> X(20 * 512), ya(20 * 40), yv(20 * 40);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& v : X) v = nd(rng);
  {
    PrefillScope int8_prompts(false);
    kk::gemm(q6.M.view(), X.data(), 20, ya.data());
  }
  {
    DecodeBitsPrompts vnni;
    kk::gemm(q6.M.view(), X.data(), 20, yv.data());
  }
  CHECK(std::memcmp(ya.data(), yv.data(), ya.size() * 4) == 0);
#endif
}
