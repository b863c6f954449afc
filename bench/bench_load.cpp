// Decode under load (issue 14, part 5): SmolLM2-135M-Instruct decode tokens/s with 1..N threads,
// on the machine as it is ("quiet") and with one competing busy process per core ("loaded": the
// benchmark forks hardware_concurrency() children that spin until it kills them, like
// `yes > /dev/null` per core). Each configuration runs on fathom's thread pool (the default,
// adaptive: jobs run on the caller alone for a while after it had to wait for a descheduled
// worker), on the pool with a fixed thread count ("fixed"), and
// with OpenMP parallel regions (FATHOM_THREADING=openmp, the behaviour before; switched per
// benchmark here). The goal:
// every thread count keeps >= 35 % of its quiet throughput when loaded (fair share: 50 % with
// one competitor per core). Compare the loaded/quiet ratios of one run.
#include "bench_common.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include <omp.h>

#include "fathom/model/full_depth.hpp"

namespace {

// One busy child process per core while alive.
class BusyLoad {
 public:
  explicit BusyLoad(unsigned n) {
    for (unsigned i = 0; i < n; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        volatile unsigned long k = 0;
        for (;;) k = k + 1;
      }
      if (pid > 0) pids_.push_back(pid);
    }
    ::usleep(200000);  // let the scheduler see them
  }
  ~BusyLoad() {
    for (pid_t p : pids_) ::kill(p, SIGKILL);
    for (pid_t p : pids_) ::waitpid(p, nullptr, 0);
  }

 private:
  std::vector<pid_t> pids_;
};

enum class Threading { Adaptive, Fixed, OpenMp };

void BM_DecodeLoad(benchmark::State& state, const std::string& name, bool loaded, Threading how) {
  const int threads = int(state.range(0));
  const int before = omp_get_max_threads();
  const bool openmp = how == Threading::OpenMp;
  fathom::kernels::detail::set_openmp_regions(openmp);
  fathom::kernels::detail::ThreadPool::adaptive_threads_flag().store(how == Threading::Adaptive);
  omp_set_num_threads(threads);
  const auto& m = bench::model(name);
  fathom::FullDepth full;
  {
    std::unique_ptr<BusyLoad> load;
    if (loaded) load = std::make_unique<BusyLoad>(std::max(1u, std::thread::hardware_concurrency()));
    bench::decode_loop(state, m, full);
  }
  omp_set_num_threads(before);
  fathom::kernels::detail::set_openmp_regions(false);
  fathom::kernels::detail::ThreadPool::adaptive_threads_flag().store(true);
}

void thread_counts(benchmark::internal::Benchmark* b) {
  for (unsigned t = 1; t <= std::max(1u, std::thread::hardware_concurrency()); t *= 2) b->Arg(int(t));
}

}  // namespace

#define FATHOM_LOAD_BENCH(tag, model, loaded, how)                                                 \
  BENCHMARK_CAPTURE(BM_DecodeLoad, tag, std::string(model), loaded, Threading::how)                \
      ->Apply(thread_counts)->ArgName("threads")->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime()

FATHOM_LOAD_BENCH(smollm2_q8_quiet, "smollm2-q8", false, Adaptive);
FATHOM_LOAD_BENCH(smollm2_q8_loaded, "smollm2-q8", true, Adaptive);
FATHOM_LOAD_BENCH(smollm2_q8_quiet_fixed, "smollm2-q8", false, Fixed);
FATHOM_LOAD_BENCH(smollm2_q8_loaded_fixed, "smollm2-q8", true, Fixed);
FATHOM_LOAD_BENCH(smollm2_q8_quiet_openmp, "smollm2-q8", false, OpenMp);
FATHOM_LOAD_BENCH(smollm2_q8_loaded_openmp, "smollm2-q8", true, OpenMp);
FATHOM_LOAD_BENCH(smollm2_native_quiet, "smollm2-native", false, Adaptive);
FATHOM_LOAD_BENCH(smollm2_native_loaded, "smollm2-native", true, Adaptive);
