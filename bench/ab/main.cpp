// ab: the old and new kernels on the same shape, interleaved rounds, the median of the per-round
// speed ratios (new over old). Usage: ab DTYPE ROWS COLS cold|hot|gemm:N [ROUNDS]
// DTYPE is fathom::DType's number (core/dtype.hpp: Q8 3, Q4_0 9, Q4_1 10, Q4_K 11, Q6_K 12, Q5_0 13,
// Q5_1 14). cold: gemv over >= 256 MiB of copies (DRAM); hot: one copy; gemm:N: N activation rows
// (FATHOM_PREFILL picks the prompt path for quantised weights). Threads: OMP_NUM_THREADS.
// Cold rounds also read bench/bandwidth.hpp's 512 MiB once and report each side against that
// round's read rate (a VM's DRAM bandwidth jumps between phases within seconds); AB_ROUNDS=1 in
// the environment prints every round.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bandwidth.hpp"
#include "side.hpp"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s DTYPE ROWS COLS cold|hot|gemm:N [ROUNDS]\n", argv[0]);
    return 2;
  }
  const int dt = std::atoi(argv[1]);
  const size_t rows = std::strtoull(argv[2], nullptr, 10), cols = std::strtoull(argv[3], nullptr, 10);
  const std::string mode = argv[4];
  const int rounds = argc > 5 ? std::atoi(argv[5]) : 11;
  const size_t n = mode.rfind("gemm:", 0) == 0 ? std::strtoull(mode.c_str() + 5, nullptr, 10) : 1;
  const bool hot = mode == "hot" || n > 1;
  const side::Api api[2] = {side::old_api(), side::new_api()};
  side::Set* set[2] = {api[0].make(dt, rows, cols, hot), api[1].make(dt, rows, cols, hot)};
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> X(n * cols), Y[2] = {std::vector<float>(n * rows), std::vector<float>(n * rows)};
  for (float& v : X) v = nd(rng);
  auto run = [&](int k, size_t copy) {
    if (n == 1) api[k].gemv(set[k], copy, X.data(), Y[k].data());
    else api[k].gemm(set[k], copy, X.data(), n, Y[k].data());
  };
  run(0, 0), run(1, 0);
  double maxdiff = 0, maxabs = 0;
  for (size_t i = 0; i < Y[0].size(); ++i) {
    maxdiff = std::max(maxdiff, double(std::fabs(Y[0][i] - Y[1][i])));
    maxabs = std::max(maxabs, double(std::fabs(Y[0][i])));
  }
  const bool verbose = std::getenv("AB_ROUNDS") != nullptr;  // print each round (a VM's phases)
  std::vector<double> ratio, times[2], of_read[2], reads;
  if (!hot) benchmark::DoNotOptimize(bench::read_pass(false));  // its first pass faults the pages in
  for (int r = 0; r < rounds; ++r) {
    double t[2];
    for (int s = 0; s < 2; ++s) {
      const int k = r % 2 ? 1 - s : s;  // alternate which side goes first
      const size_t copies = api[k].count(set[k]), reps = n > 1 ? 5 : std::max<size_t>(copies, 400);
      std::vector<double> ts;
      for (size_t i = 0; i < reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        run(k, n > 1 ? 0 : i % copies);
        ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::nth_element(ts.begin(), ts.begin() + ts.size() / 2, ts.end());
      t[k] = ts[ts.size() / 2];
      times[k].push_back(t[k]);
    }
    ratio.push_back(t[0] / t[1]);
    if (!hot) {
      const auto r0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(bench::read_pass(false));
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count();
      const double read = double(bench::kReadBytes) / secs;
      reads.push_back(read * 1e-9);
      for (int k = 0; k < 2; ++k) of_read[k].push_back(100.0 * api[k].bytes(set[k]) / t[k] / read);
      if (verbose)
        std::printf("  round %d: read %.1f GB/s, old %.1f %%, new %.1f %%, new/old %.2fx\n", r, read * 1e-9,
                    of_read[0].back(), of_read[1].back(), ratio.back());
    }
  }
  auto quantile = [](std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[size_t(q * double(v.size() - 1) + 0.5)];
  };
  const double t0 = quantile(times[0], 0.5), t1 = quantile(times[1], 0.5);
  std::printf("dtype %d %zux%zu %s, %d threads: old %.2f us (%.1f GB/s), new %.2f us (%.1f GB/s), new/old speed "
              "%.2fx [q1 %.2f, q3 %.2f]; max |new - old| %.2g of max |y| %.2g\n",
              dt, rows, cols, mode.c_str(), omp_get_max_threads(), t0 * 1e6, api[0].bytes(set[0]) / t0 * 1e-9,
              t1 * 1e6, api[1].bytes(set[1]) / t1 * 1e-9, quantile(ratio, 0.5), quantile(ratio, 0.25),
              quantile(ratio, 0.75), maxdiff, maxabs);
  if (!hot)
    std::printf("  of the same round's read (%.1f GB/s [%.1f, %.1f]): old %.1f %%, new %.1f %% (medians)\n",
                quantile(reads, 0.5), quantile(reads, 0.25), quantile(reads, 0.75), quantile(of_read[0], 0.5),
                quantile(of_read[1], 0.5));
}
