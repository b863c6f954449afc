#pragma once
// Work partitioning shared by the kernels, on fathom's own small thread pool.
//
// Why not OpenMP parallel regions: a decode step runs ~150 short regions (~40 us each on
// SmolLM2-135M), and an OpenMP region ends in a barrier that waits for every thread of the team.
// On a machine where other processes compete for the cores, one of our threads is regularly
// descheduled for a time slice (milliseconds); the others then wait at the barrier (spinning, by
// libgomp's default, which also burns their own share), and decode collapsed from 133 to 1.1
// tok/s with one busy process per core (issue 14; docs/benchmarks.md, "Decode under load").
//
// The pool instead hands out chunks of a job dynamically, and the caller only waits for chunks
// some thread has actually *claimed*: a worker that has not woken up yet simply finds no work
// left, so a descheduled thread costs at most the chunk it is in the middle of. Each thread owns a
// contiguous range of the chunks and claims them front to back, so its part of a matrix is one
// stream for the prefetchers and its claims touch a cache line nobody else writes; a thread out
// of chunks steals from the back of the others' ranges. (With one shared counter the threads took
// chunks alternately: every chunk restarted a stream and its claim moved a contended line between
// cores; SmolLM2-135M decoded 1.09-1.15x faster at two threads with the ranges, docs/benchmarks.md,
// "Decode against the read bound".) Idle workers spin
// briefly (FATHOM_SPIN_US, default 50 us: regions follow each other within microseconds when
// decoding on a quiet machine), then sleep on a futex (std::atomic::wait) and so leave the core to
// whoever needs it. When the caller nevertheless has to sleep for a claimed chunk (its thread is
// off the CPU), the following jobs run on the calling thread alone for 10-320 ms
// (FATHOM_ADAPTIVE_THREADS=0 turns this off): on a loaded machine one thread decodes faster than
// two that keep waiting for each other; on a quiet one it never happens.
//
// Results never depend on the schedule: every caller's units compute their outputs alone (each
// output element is summed by one unit in a fixed order), and chunk boundaries depend only on the
// number of units and threads. The thread count is OpenMP's (omp_get_max_threads(), so
// OMP_NUM_THREADS and omp_set_num_threads() keep working); no pool job runs inside another one or
// inside an OpenMP region (nested parallelism would oversubscribe the cores).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <thread>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fathom::kernels::detail {

// Below this many multiply-adds a parallel job costs more than it saves (waking a worker is a
// few microseconds; one core does ~10^4 multiply-adds per microsecond).
constexpr size_t kParallelMinWork = size_t(1) << 17;

inline thread_local bool tl_in_pool_job = false;  // this thread runs a chunk of a pool job

inline bool in_parallel() {
#if defined(_OPENMP)
  if (omp_in_parallel()) return true;
#endif
  return tl_in_pool_job;
}

// The most threads a job may use: OpenMP's setting (1 without OpenMP).
inline int max_threads() {
#if defined(_OPENMP)
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

inline int worker_count(size_t work) {
  if (work < kParallelMinWork || in_parallel()) return 1;
  return max_threads();
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// The pool: workers 1..n-1 (the calling thread is slot 0 of every job), created on first use and
// kept for the life of the process. One job at a time (a mutex serialises callers from different
// threads).
class ThreadPool {
 public:
  // Most chunks per job and threads per job (the job state packs them into one 64-bit word).
  static constexpr size_t kMaxChunks = (size_t(1) << 20) - 1;
  static constexpr int kMaxThreads = 255;

  // Never destroyed: its sleeping workers end with the process, and no static destructor can run
  // a kernel after the pool is gone.
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool;
    return *pool;
  }

  // Calls fn(chunk, slot) for chunk = 0..chunks-1 over `threads` threads (slot < threads; the
  // caller is slot 0 and takes chunks too); returns when every chunk is done. chunks <= kMaxChunks.
  template <class F>
  void run(size_t chunks, int threads, F& fn) {
    std::lock_guard<std::mutex> lock(run_mutex_);
    threads = std::clamp(threads, 1, kMaxThreads);
    grow(threads - 1);
    call_ = [](void* ctx, size_t chunk, int slot) { (*static_cast<F*>(ctx))(chunk, slot); };
    ctx_ = &fn;
    done_.store(0, std::memory_order_relaxed);
    ++gen_;
    for (int t = 0; t < threads; ++t)  // published by the store to state_ below
      ranges_[t].v.store(pack_range(gen_, chunks * size_t(t) / size_t(threads), chunks * size_t(t + 1) / size_t(threads)),
                         std::memory_order_relaxed);
    state_.store(pack(gen_, uint64_t(threads), chunks), std::memory_order_seq_cst);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) epoch_.notify_all();
    tl_in_pool_job = true;
    const int64_t t0 = now_us();
    const size_t mine = work(0);
    const int64_t t1 = now_us();
    tl_in_pool_job = false;
    wait_done(uint32_t(chunks), t1, mine ? (t1 - t0) / int64_t(mine) : 0);
  }

 private:
  // state_: gen (16 bits) | threads (8) | total chunks (20).
  static uint64_t pack(uint64_t gen, uint64_t threads, uint64_t total) {
    return (gen & 0xffff) << 48 | threads << 40 | total << 20;
  }
  static uint64_t gen_of(uint64_t s) { return s >> 48; }
  static int threads_of(uint64_t s) { return int((s >> 40) & 0xff); }
  static size_t total_of(uint64_t s) { return size_t((s >> 20) & 0xfffff); }
  // ranges_[t]: gen (16 bits) | front (20) | back (20): slot t's unclaimed chunks [front, back) of
  // job gen. A word of an older job (a slot the current one does not use) is spent: front >= back.
  static uint64_t pack_range(uint64_t gen, uint64_t front, uint64_t back) {
    return (gen & 0xffff) << 40 | front << 20 | back;
  }

  static std::chrono::microseconds spin_time() {
    static const long us = [] {
      const char* e = std::getenv("FATHOM_SPIN_US");
      return e ? std::max(0L, std::atol(e)) : 50L;
    }();
    return std::chrono::microseconds(us);
  }

  // Claims a chunk of job `gen` from slot t's range: its front (the owner) or its back (a thief).
  bool claim(int t, uint64_t gen, bool front, size_t& chunk) {
    std::atomic<uint64_t>& range = ranges_[t].v;
    uint64_t r = range.load(std::memory_order_acquire);
    for (;;) {
      const size_t f = size_t((r >> 20) & 0xfffff), b = size_t(r & 0xfffff);
      if ((r >> 40) != (gen & 0xffff) || f >= b) return false;
      if (range.compare_exchange_weak(r, front ? r + (uint64_t(1) << 20) : r - 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        chunk = front ? f : b - 1;
        return true;
      }
    }
  }

  // Claims and runs chunks of the current job until none is left -- its own range from the front,
  // then the others' from the back; returns how many it ran. The chunks of its own range are
  // reported done together when the range runs out (stolen ones one by one): done_ is a line every
  // thread writes, and an atomic add on it per chunk cost 0.4-0.9 us per small job at two threads
  // on a Zen 5 VM whose two vCPUs behaved like cores on different dies (docs/benchmarks.md,
  // "Decode at two threads: job bookkeeping and attention"). A chunk not yet reported keeps the
  // job open, so a thread that stops in the middle of its range delays the caller no more than
  // the chunk it is in did.
  size_t work(int slot) {
    const uint64_t s = state_.load(std::memory_order_acquire);
    const int threads = threads_of(s);
    if (slot >= threads) return 0;
    size_t ran = 0, unreported = 0, chunk = 0;
    for (int k = 0; k < threads; ++k) {
      const int owner = (slot + k) % threads;
      while (claim(owner, gen_of(s), k == 0, chunk)) {
        // The chunk is ours and the job cannot end before we report it: call_/ctx_ and state_ are
        // this job's (s may be an older job's with the same 16-bit gen, if this thread was off
        // its CPU for 65536 jobs).
        call_(ctx_, chunk, slot);
        ++ran, ++unreported;
        if (k > 0) report(unreported, slot);
      }
      if (k == 0) report(unreported, slot);
    }
    return ran;
  }

  // Adds `n` finished chunks to done_ (n = 0 afterwards); wakes a sleeping caller at the last.
  void report(size_t& n, int slot) {
    if (n == 0) return;
    const size_t total = total_of(state_.load(std::memory_order_acquire));  // still this job's: n holds it open
    if (done_.fetch_add(uint32_t(n), std::memory_order_seq_cst) + n == total && slot != 0 &&
        caller_sleeping_.load(std::memory_order_seq_cst))
      done_.notify_one();
    n = 0;
  }

  // Contention: the caller waited for a worker's chunk more than 4 times as long as its own
  // chunks take (the worker's thread is off the CPU: another process has its core). Jobs then run on the calling thread alone for a while,
  // 10 ms after the first such stall, doubling (to 320 ms) while stalls keep coming within
  // twice that time of the last solo period; on a quiet machine this never happens.
  void note_stall() {
    if (!adaptive_threads_flag().load(std::memory_order_relaxed)) return;
    const int64_t now = now_us();
    const int64_t since = now - solo_until_us_.load(std::memory_order_relaxed);
    int64_t span = solo_span_us_.load(std::memory_order_relaxed);
    span = since < 2 * span ? std::min<int64_t>(2 * span, 320000) : 10000;
    solo_span_us_.store(span, std::memory_order_relaxed);
    solo_until_us_.store(now + span, std::memory_order_relaxed);
  }

 public:
  // True while jobs should run on the calling thread alone (see note_stall).
  bool solo() const {
    return adaptive_threads_flag().load(std::memory_order_relaxed) &&
           now_us() < solo_until_us_.load(std::memory_order_relaxed);
  }
  static std::atomic<bool>& adaptive_threads_flag() {
    static std::atomic<bool> on = [] {
      const char* e = std::getenv("FATHOM_ADAPTIVE_THREADS");
      return !(e && std::string_view(e) == "0");
    }();
    return on;
  }

 private:
  static int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // Every chunk reports in done_ when finished; the caller waits for all of them.
  // `since`: when the caller ran out of chunks; `chunk_us`: its mean time per chunk. A wait of
  // more than 4 chunks' time (+ 100 us) means the thread holding the last chunk was off its CPU.
  void wait_done(uint32_t target, int64_t since, int64_t chunk_us) {
    if (done_.load(std::memory_order_acquire) == target) return;
    struct Check {  // on every way out: was this a stall?
      ThreadPool& p;
      int64_t since, limit;
      ~Check() {
        if (now_us() - since > limit) p.note_stall();
      }
    } check{*this, since, 4 * chunk_us + 100};
    const auto until = std::chrono::steady_clock::now() + spin_time();
    for (int i = 0;; ++i) {
      if (done_.load(std::memory_order_acquire) == target) return;
      if (i % 64 == 63 && std::chrono::steady_clock::now() > until) break;
      cpu_relax();
    }
    for (;;) {  // a worker holding a chunk is slow or descheduled: sleep until it reports
      caller_sleeping_.store(true, std::memory_order_seq_cst);
      const uint32_t d = done_.load(std::memory_order_seq_cst);
      if (d == target) break;
      done_.wait(d, std::memory_order_acquire);
    }
    caller_sleeping_.store(false, std::memory_order_relaxed);
  }

  void worker(int slot) {
    uint64_t seen = gen_of(state_.load(std::memory_order_acquire));
    for (;;) {
      // Wait for a job newer than `seen`: spin a little, then sleep.
      bool fresh = false;
      const auto until = std::chrono::steady_clock::now() + spin_time();
      for (int i = 0;; ++i) {
        if (gen_of(state_.load(std::memory_order_acquire)) != seen) {
          fresh = true;
          break;
        }
        if (i % 64 == 63 && std::chrono::steady_clock::now() > until) break;
        cpu_relax();
      }
      if (!fresh) {
        const uint32_t e = epoch_.load(std::memory_order_seq_cst);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        if (gen_of(state_.load(std::memory_order_seq_cst)) == seen)
          epoch_.wait(e, std::memory_order_seq_cst);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        continue;
      }
      seen = gen_of(state_.load(std::memory_order_acquire));
      tl_in_pool_job = true;
      work(slot);
      tl_in_pool_job = false;
    }
  }

  void grow(int n) {
    for (; workers_ < n; ++workers_) std::thread([this, slot = workers_ + 1] { worker(slot); }).detach();
  }

  std::mutex run_mutex_;
  int workers_ = 0;                     // threads started (slots 1..workers_)
  uint64_t gen_ = 0;                    // jobs published (caller side, under run_mutex_)
  void (*call_)(void*, size_t, int) = nullptr;
  void* ctx_ = nullptr;
  struct alignas(64) Range {  // one cache line each: an owner's claims write only its own
    std::atomic<uint64_t> v{0};
  };
  Range ranges_[kMaxThreads];
  alignas(64) std::atomic<uint64_t> state_{0};
  alignas(64) std::atomic<uint32_t> done_{0};    // chunks finished by workers in this job
  std::atomic<bool> caller_sleeping_{false};
  alignas(64) std::atomic<uint32_t> epoch_{0};   // bumped per job: what sleeping workers wait on
  std::atomic<int> sleepers_{0};
  std::atomic<int64_t> solo_until_us_{0}, solo_span_us_{10000};
};

// FATHOM_THREADING=openmp runs the kernels' jobs as OpenMP parallel regions instead of on the
// pool (the behaviour before issue 14, kept for comparison: bench_load measures both, switching
// with set_openmp_regions between jobs).
inline std::atomic<bool>& openmp_regions_flag() {
  static std::atomic<bool> omp = [] {
    const char* e = std::getenv("FATHOM_THREADING");
    return e && std::string_view(e) == "openmp";
  }();
  return omp;
}
inline bool use_openmp_regions() { return openmp_regions_flag().load(std::memory_order_relaxed); }
inline void set_openmp_regions(bool on) { openmp_regions_flag().store(on); }

// Calls body(begin, end) for `units` items split into contiguous chunks over `threads` threads,
// `grain` chunks per thread, handed out dynamically (see the top of this file). The chunk
// boundaries depend only on (units, threads, grain), so no item's result depends on scheduling.
template <class Body>
inline void parallel_chunks(size_t units, int threads, Body&& body, size_t grain = 8) {
  if (threads <= 1 || units <= 1 || in_parallel()) {
    body(size_t(0), units);
    return;
  }
#if defined(_OPENMP)
  if (use_openmp_regions()) {  // one static chunk per thread
#pragma omp parallel num_threads(threads)
    {
      const size_t nt = size_t(omp_get_num_threads()), t = size_t(omp_get_thread_num());
      const size_t b = units * t / nt, e = units * (t + 1) / nt;
      if (b < e) body(b, e);
    }
    return;
  }
#endif
  if (ThreadPool::instance().solo()) {
    body(size_t(0), units);
    return;
  }
  const size_t chunks = std::min({units, size_t(threads) * std::max<size_t>(grain, 1), ThreadPool::kMaxChunks});
  auto fn = [&](size_t c, int) { body(units * c / chunks, units * (c + 1) / chunks); };
  ThreadPool::instance().run(chunks, threads, fn);
}

// Calls body(job, thread) for job = 0..jobs-1, handed out dynamically over the threads when
// `threaded` (for jobs of very different cost); thread < max_threads() indexes per-thread scratch.
// Each job must write only its own outputs, so results never depend on the schedule.
template <class Body>
inline void parallel_jobs(long jobs, bool threaded, Body&& body) {
  const int threads = max_threads();
  if (!threaded || threads <= 1 || jobs <= 1 || in_parallel()) {
    for (long j = 0; j < jobs; ++j) body(j, 0);
    return;
  }
#if defined(_OPENMP)
  if (use_openmp_regions()) {
#pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (long j = 0; j < jobs; ++j) body(j, omp_get_thread_num());
    return;
  }
#endif
  if (ThreadPool::instance().solo()) {
    for (long j = 0; j < jobs; ++j) body(j, 0);
    return;
  }
  const size_t n = size_t(jobs), chunks = std::min(n, ThreadPool::kMaxChunks);
  auto fn = [&](size_t c, int slot) {
    for (size_t j = n * c / chunks; j < n * (c + 1) / chunks; ++j) body(long(j), slot);
  };
  ThreadPool::instance().run(chunks, threads, fn);
}

}  // namespace fathom::kernels::detail
