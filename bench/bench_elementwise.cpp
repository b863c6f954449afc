// Vector kernels of the blocks at the Qwen2.5-0.5B (896) and Llama-8B (4096) widths. They touch a
// few KB each, so they are L1-bound: bytes/s counts the floats read and written.
#include <cmath>

#include "kernel_bench.hpp"
#include "fathom/kernels/elementwise.hpp"

using namespace fathom;

static void BM_rmsnorm(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  auto x = kbench::bench_vector(n), w = kbench::bench_vector(n);
  std::vector<float> y(n);
  for (auto _ : state) {
    kernels::rmsnorm(x.data(), w.data(), y.data(), n, 1e-6f);
    benchmark::DoNotOptimize(y.data());
  }
  kbench::report(state, 12.0 * double(n), 4.0 * double(n));
}
BENCHMARK(BM_rmsnorm)->Arg(896)->Arg(4096);

// One token's RoPE over all heads of q (14 heads or 32 heads of 64/128).
static void BM_rope(benchmark::State& state) {
  const size_t heads = size_t(state.range(0)), hd = size_t(state.range(1));
  auto q = kbench::bench_vector(heads * hd);
  std::vector<float> c(hd / 2), s(hd / 2);
  for (size_t i = 0; i < hd / 2; ++i) { c[i] = std::cos(0.1f * float(i)); s[i] = std::sin(0.1f * float(i)); }
  for (auto _ : state) {
    for (size_t h = 0; h < heads; ++h) kernels::rope_rotate_half(q.data() + h * hd, c.data(), s.data(), hd);
    benchmark::DoNotOptimize(q.data());
  }
  kbench::report(state, 8.0 * double(heads * hd), 3.0 * double(heads * hd));
}
BENCHMARK(BM_rope)->Args({14, 64})->Args({32, 128});

// SwiGLU over the intermediate width (4864 for 0.5B, 14336 for 8B) at the named hidden size.
static void BM_swiglu(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  auto g = kbench::bench_vector(n), u = kbench::bench_vector(n);
  std::vector<float> y(n);
  for (auto _ : state) {
    kernels::swiglu(g.data(), u.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  kbench::report(state, 12.0 * double(n), 4.0 * double(n));
}
BENCHMARK(BM_swiglu)->Arg(896)->Arg(4096)->Arg(4864)->Arg(14336);

static void BM_softmax(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  const auto x0 = kbench::bench_vector(n);
  std::vector<float> x(n);
  for (auto _ : state) {
    std::copy(x0.begin(), x0.end(), x.begin());
    kernels::softmax(x.data(), n);
    benchmark::DoNotOptimize(x.data());
  }
  kbench::report(state, 12.0 * double(n), 3.0 * double(n));
}
BENCHMARK(BM_softmax)->Arg(896)->Arg(2048)->Arg(4096);
