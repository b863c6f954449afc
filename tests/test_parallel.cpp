// The kernels' thread pool (kernels/parallel.hpp): every unit runs exactly once whatever the
// thread count (more threads than cores included), per-thread slots stay below the thread count,
// each thread's chunks come from its own range before it steals, nested and concurrent callers run
// correctly, and products are bit-identical for 1..4 threads on the pool and on OpenMP regions.
#include <doctest/doctest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/cpu_features.hpp"
#include "fathom/kernels/parallel.hpp"
#include "thread_scope.hpp"

using namespace fathom;
namespace kd = fathom::kernels::detail;

namespace {
struct OpenMpScope {
  explicit OpenMpScope(bool on) { kd::set_openmp_regions(on); }
  ~OpenMpScope() { kd::set_openmp_regions(false); }
};
}  // namespace

TEST_CASE("parallel_chunks and parallel_jobs run every unit once, slots below the thread count") {
  for (int threads : {1, 2, 3, 8}) {
    for (size_t units : {size_t(0), size_t(1), size_t(2), size_t(5), size_t(1000), size_t(100000)}) {
      std::vector<std::atomic<int>> hits(units);  // [units] times each unit ran
      for (int rep = 0; rep < 3; ++rep)
        kd::parallel_chunks(units, threads, [&](size_t b, size_t e) {
          CHECK(b <= e);
          for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
      for (size_t i = 0; i < units; ++i) REQUIRE(hits[i].load() == 3);
    }
    ThreadScope ts(threads);
    const long jobs = 777;
    std::vector<std::atomic<int>> hits(jobs);
    std::atomic<int> bad_slot{0};
    kd::parallel_jobs(jobs, true, [&](long j, int slot) {
      hits[size_t(j)].fetch_add(1);
      if (slot < 0 || slot >= threads) bad_slot.fetch_add(1);
    });
    for (long j = 0; j < jobs; ++j) REQUIRE(hits[size_t(j)].load() == 1);
    CHECK(bad_slot.load() == 0);
  }
}

TEST_CASE("each thread takes its own contiguous range front to back, then steals the others' from the back") {
  ThreadScope ts(2);
  for (int i = 0; i < 400 && kd::ThreadPool::instance().solo(); ++i)  // an earlier stall's solo period
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE_FALSE(kd::ThreadPool::instance().solo());
  constexpr long jobs = 64;
  std::vector<long> ran[2];  // [slot] jobs in the order that slot ran them
  std::atomic<int> runs{0};
  kd::parallel_jobs(jobs, true, [&](long j, int slot) {
    REQUIRE((slot == 0 || slot == 1));
    // The worker's first job sleeps: the caller, done with its own range, must take the rest.
    if (slot == 1 && ran[1].empty()) std::this_thread::sleep_for(std::chrono::milliseconds(30));
    ran[slot].push_back(j);
    runs.fetch_add(1);
  });
  CHECK(runs.load() == jobs);
  std::vector<int> seen(jobs, 0);
  for (const auto& r : ran)
    for (long j : r) ++seen[size_t(j)];
  for (long j = 0; j < jobs; ++j) REQUIRE(seen[size_t(j)] == 1);
  // Slot 0: 0..31 in order, then slot 1's range from its end down.
  REQUIRE(ran[0].size() > size_t(jobs / 2));
  for (size_t k = 0; k < ran[0].size(); ++k)
    CHECK(ran[0][k] == (k < size_t(jobs / 2) ? long(k) : jobs - 1 - long(k - jobs / 2)));
  // Slot 1 (if it woke in time): its range's front, in order.
  for (size_t k = 0; k < ran[1].size(); ++k) CHECK(ran[1][k] == jobs / 2 + long(k));
}

TEST_CASE("jobs run every unit once across the wrap of the pool's 32-bit job numbers") {
  // A job's ranges are numbered with it; a range of an older job counts as fresh. Near the wrap
  // (and at the 2^28 boundaries where idle slots' ranges are renewed) that comparison must hold.
  auto& adaptive = kd::ThreadPool::adaptive_threads_flag();
  const bool was = adaptive.load();
  adaptive.store(false);  // no solo periods: every job goes through the pool
  for (uint32_t start : {0xfffffff0u, (1u << 28) - 5, 0x7ffffff8u}) {
    kd::parallel_chunks(64, 3, [](size_t, size_t) {});  // the workers exist
    kd::ThreadPool::instance().renumber_for_testing(start);
    for (int threads : {2, 3, 2}) {
      for (int job = 0; job < 12; ++job) {
        std::vector<std::atomic<int>> hits(97);
        kd::parallel_chunks(hits.size(), threads, [&](size_t b, size_t e) {
          for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        for (auto& h : hits) REQUIRE(h.load() == 1);
      }
    }
  }
  adaptive.store(was);
}

TEST_CASE("an exception thrown by a unit reaches the caller once the job is done; the pool keeps working") {
  auto& adaptive = kd::ThreadPool::adaptive_threads_flag();
  const bool was = adaptive.load();
  adaptive.store(false);
  for (int threads : {2, 3}) {
    ThreadScope ts(threads);
    constexpr long jobs = 200;
    for (long bad : {0L, jobs / 2 + 1, jobs - 1}) {  // the caller's range, a worker's, the last one
      std::vector<std::atomic<int>> hits(jobs);
      CHECK_THROWS_WITH_AS(kd::parallel_jobs(jobs, true,
                                             [&](long j, int) {
                                               hits[size_t(j)].fetch_add(1);
                                               if (j == bad) throw std::runtime_error("unit " + std::to_string(j));
                                             }),
                           ("unit " + std::to_string(bad)).c_str(), std::runtime_error);
      for (long j = 0; j < jobs; ++j) REQUIRE(hits[size_t(j)].load() == 1);
      std::atomic<long> total{0};
      kd::parallel_chunks(1000, threads, [&](size_t b, size_t e) { total.fetch_add(long(e - b)); });
      CHECK(total.load() == 1000);
    }
  }
  adaptive.store(was);
}

TEST_CASE("pool jobs nested in a pool job or an OpenMP region run on the calling thread") {
  std::atomic<int> inner_total{0}, foreign{0};
  kd::parallel_chunks(8, 2, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      const auto me = std::this_thread::get_id();
      kd::parallel_chunks(100, 2, [&](size_t ib, size_t ie) {
        if (std::this_thread::get_id() != me) foreign.fetch_add(1);
        inner_total.fetch_add(int(ie - ib));
      });
    }
  });
  CHECK(inner_total.load() == 800);
  CHECK(foreign.load() == 0);
  std::atomic<int> omp_total{0};
#pragma omp parallel num_threads(2)
  kd::parallel_chunks(50, 2, [&](size_t b, size_t e) { omp_total.fetch_add(int(e - b)); });
  CHECK(omp_total.load() % 50 == 0);
  CHECK(omp_total.load() >= 50);
}

TEST_CASE("concurrent callers share the pool and each gets all its units") {
  std::vector<std::thread> callers;
  std::atomic<long> total{0};
  for (int c = 0; c < 3; ++c)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 200; ++rep)
        kd::parallel_chunks(64, 2, [&](size_t b, size_t e) { total.fetch_add(long(e - b)); });
    });
  for (auto& t : callers) t.join();
  CHECK(total.load() == 3L * 200 * 64);
}

TEST_CASE("gemv and gemm give the same bits for 1..4 threads, on the pool and on OpenMP regions") {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  const size_t rows = 301, cols = 700, n = 5;
  std::vector<float> w(rows * cols), x(n * cols);  // W [rows, cols], X [n, cols]
  for (float& v : w) v = nd(rng);
  for (float& v : x) v = nd(rng);
  const kernels::QuantizedMatrix q = kernels::quantize_q8({DType::F32, rows, cols, w.data()});
  for (const kernels::MatrixView W : {kernels::MatrixView{DType::F32, rows, cols, w.data()}, q.view()}) {
    std::vector<float> y1(rows), Y1(n * rows);
    {
      ThreadScope ts(1);
      kernels::gemv(W, x.data(), y1.data());
      kernels::gemm(W, x.data(), n, Y1.data());
    }
    for (bool omp : {false, true})
      for (int t = 2; t <= 4; ++t) {
        ThreadScope ts(t);
        OpenMpScope os(omp);
        std::vector<float> y(rows), Y(n * rows);
        kernels::gemv(W, x.data(), y.data());
        kernels::gemm(W, x.data(), n, Y.data());
        CHECK(std::memcmp(y.data(), y1.data(), rows * sizeof(float)) == 0);
        CHECK(std::memcmp(Y.data(), Y1.data(), n * rows * sizeof(float)) == 0);
      }
  }
}

TEST_CASE("AMX detection answers without faulting; absent or refused means not usable") {
  const kernels::AmxSupport& a = kernels::amx();
  MESSAGE("AMX: tile " << a.tile << ", bf16 " << a.bf16 << ", int8 " << a.int8 << ", permitted " << a.permitted
                       << " -> " << std::string(a.usable() ? "usable" : "not usable (AVX-512 / portable kernels)"));
  if (!a.tile) CHECK_FALSE(a.usable());
  if (!a.permitted) CHECK_FALSE(a.usable());
  CHECK(&kernels::amx() == &a);  // asked once
}
