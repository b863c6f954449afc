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
#include <cstring>
#include <exception>
#include <mutex>
#include <string_view>
#include <thread>
#include <type_traits>

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
//
// A job costs its threads a few transfers of cache lines between cores, and on a VM whose vCPUs
// sat on different dies each one took ~0.3 us, 24 KB of streaming at two threads (docs/
// benchmarks.md, "Decode at two threads: hand-offs"). So a worker finds all it needs in the line
// it polls (job_: number, shape, function, small closures copied in), initialises its own range
// itself (no other thread writes it before it claims), and counts its finished chunks on its own
// line (slots_[t]), which the caller sums: of the pool's state the caller writes only job_.
class ThreadPool {
 public:
  // Most chunks per job and threads per job (the job word packs them with the job's number).
  static constexpr size_t kMaxChunks = (size_t(1) << 16) - 1;
  static constexpr int kMaxThreads = 255;

  // Never destroyed: its sleeping workers end with the process, and no static destructor can run
  // a kernel after the pool is gone.
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool;
    return *pool;
  }

  // Calls fn(chunk, slot) for chunk = 0..chunks-1 over `threads` threads (slot < threads; the
  // caller is slot 0 and takes chunks too); returns when every chunk is done. chunks <= kMaxChunks.
  // An exception thrown by fn on any thread is rethrown here once every chunk has run (the first
  // one caught; later chunks still run), so the job's accounting and the pool stay intact.
  template <class F>
  void run(size_t chunks, int threads, F& fn) {
    std::lock_guard<std::mutex> lock(run_mutex_);
    threads = std::clamp(threads, 1, kMaxThreads);
    grow(threads - 1);
    const uint32_t gen = ++gen_;
    refresh_idle_ranges(gen);
    job_.call = [](void* ctx, size_t chunk, int slot) { (*static_cast<F*>(ctx))(chunk, slot); };
    if constexpr (sizeof(F) <= sizeof(job_.fn) && std::is_trivially_copyable_v<F> && alignof(F) <= alignof(void*)) {
      std::memcpy(job_.fn, &fn, sizeof(F));  // in the line the workers poll: one transfer less
      job_.ctx = job_.fn;
    } else {
      job_.ctx = &fn;
    }
    job_.state.store(pack(gen, uint64_t(threads), chunks), std::memory_order_seq_cst);  // publishes call/ctx
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      epoch_.fetch_add(1, std::memory_order_seq_cst);
      epoch_.notify_all();
    }
    target_ += uint32_t(chunks);
    tl_in_pool_job = true;
    const int64_t t0 = now_us();
    const size_t mine = work(0);
    const int64_t t1 = now_us();
    tl_in_pool_job = false;
    caller_done_ += uint32_t(mine);
    wait_done(t1, mine ? (t1 - t0) / int64_t(mine) : 0);
    if (failed_.load(std::memory_order_relaxed)) {  // set before the chunk's report, seen through it
      std::exception_ptr e;
      {
        std::lock_guard<std::mutex> error_lock(error_mutex_);
        e.swap(error_);
        failed_.store(false, std::memory_order_relaxed);
      }
      std::rethrow_exception(e);
    }
  }

 private:
  // job_.state: gen (32 bits) | threads (8) | chunks (16).
  static uint64_t pack(uint64_t gen, uint64_t threads, uint64_t chunks) {
    return uint64_t(uint32_t(gen)) << 32 | threads << 16 | chunks;
  }
  static uint32_t gen_of(uint64_t s) { return uint32_t(s >> 32); }
  static int threads_of(uint64_t s) { return int((s >> 16) & 0xff); }
  static size_t chunks_of(uint64_t s) { return size_t(s & 0xffff); }
  // slots_[t].range: gen (32 bits) | front (16) | back (16): slot t's unclaimed chunks [front,
  // back) of job gen. A word of an older job stands for the slot's whole share of the current one
  // (the first claim writes it); a word of a newer job means the claimer's job is over.
  static uint64_t pack_range(uint32_t gen, uint64_t front, uint64_t back) {
    return uint64_t(gen) << 32 | front << 16 | back;
  }

  static std::chrono::microseconds spin_time() {
    static const long us = [] {
      const char* e = std::getenv("FATHOM_SPIN_US");
      return e ? std::max(0L, std::atol(e)) : 50L;
    }();
    return std::chrono::microseconds(us);
  }

  // Claims a chunk of job s from slot t's range: its front (the owner) or its back (a thief).
  // A thread that read s and then was off its CPU while the job ended finds every range of the
  // job spent or newer: a job ends only when each of its ranges has been claimed empty.
  bool claim(int t, uint64_t s, bool front, size_t& chunk) {
    std::atomic<uint64_t>& range = slots_[t].range;
    const uint32_t gen = gen_of(s);
    uint64_t r = range.load(std::memory_order_acquire);
    for (;;) {
      uint64_t cur = r;
      if (uint32_t(r >> 32) != gen) {
        if (int32_t(gen - uint32_t(r >> 32)) < 0) return false;  // a newer job's: s is over
        const size_t chunks = chunks_of(s), threads = size_t(threads_of(s));
        cur = pack_range(gen, chunks * size_t(t) / threads, chunks * size_t(t + 1) / threads);
      }
      const size_t f = size_t((cur >> 16) & 0xffff), b = size_t(cur & 0xffff);
      if (f >= b) return false;
      if (range.compare_exchange_weak(r, front ? cur + (uint64_t(1) << 16) : cur - 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        chunk = front ? f : b - 1;
        return true;
      }
    }
  }

 public:
  // Tests: the next job is number `gen` + 1 (to cross the wrap of the 32-bit job numbers).
  void renumber_for_testing(uint32_t gen) {
    std::lock_guard<std::mutex> lock(run_mutex_);
    gen_ = gen;
    spend_ranges(gen);
  }

 private:
  // A range word 2^31 or more jobs old would read as newer than the current job (32-bit
  // numbers wrap): the caller renews the words of slots the recent jobs did not use.
  void refresh_idle_ranges(uint32_t gen) {
    if ((gen & ((uint32_t(1) << 28) - 1)) == 0) spend_ranges(gen - 1);
  }
  // Every slot's range spent as of job `gen` (the claims of any later job start afresh).
  void spend_ranges(uint32_t gen) {
    for (int t = 0; t <= workers_; ++t) slots_[t].range.store(pack_range(gen, 0, 0), std::memory_order_relaxed);
  }

  // Claims and runs chunks of the current job until none is left -- its own range from the front,
  // then the others' from the back; returns how many it ran. The chunks of its own range are
  // reported done together when the range runs out (stolen ones one by one), so a small job costs
  // each thread one write to its own line. A chunk not yet reported keeps the job open, so a
  // thread that stops in the middle of its range delays the caller no more than the chunk it is in.
  size_t work(int slot) {
    const uint64_t s = job_.state.load(std::memory_order_acquire);
    const int threads = threads_of(s);
    if (slot >= threads) return 0;
    size_t ran = 0, unreported = 0, chunk = 0;
    for (int k = 0; k < threads; ++k) {
      const int owner = (slot + k) % threads;
      while (claim(owner, s, k == 0, chunk)) {
        // The chunk is ours and the job cannot end before we report it: job_.call/ctx are this
        // job's.
        try {
          job_.call(job_.ctx, chunk, slot);
        } catch (...) {
          keep_error(std::current_exception());
        }
        ++ran, ++unreported;
        if (k > 0) report(unreported, slot);
      }
      if (k == 0) report(unreported, slot);
    }
    return ran;
  }

  void keep_error(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = std::move(e);
    failed_.store(true, std::memory_order_relaxed);
  }

  // Adds a worker's `n` finished chunks to its slot's count (n = 0 afterwards); wakes a sleeping
  // caller. The caller (slot 0) counts its own chunks from work()'s result instead.
  void report(size_t& n, int slot) {
    if (n == 0 || slot == 0) return;
    std::atomic<uint32_t>& done = slots_[slot].done;
    done.store(done.load(std::memory_order_relaxed) + uint32_t(n), std::memory_order_seq_cst);
    if (caller_sleeping_.load(std::memory_order_seq_cst)) {
      wake_.fetch_add(1, std::memory_order_seq_cst);
      wake_.notify_one();
    }
    n = 0;
  }

  // Chunks finished in all jobs so far (wrapping): the caller's and every worker's.
  uint32_t finished() const {
    uint32_t d = caller_done_;
    for (int t = 1; t <= workers_; ++t) d += slots_[t].done.load(std::memory_order_seq_cst);
    return d;
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

  // The caller waits until every chunk is reported. `since`: when the caller ran out of chunks;
  // `chunk_us`: its mean time per chunk. A wait of more than 4 chunks' time (+ 100 us) means the
  // thread holding the last chunk was off its CPU.
  void wait_done(int64_t since, int64_t chunk_us) {
    if (finished() == target_) return;
    struct Check {  // on every way out: was this a stall?
      ThreadPool& p;
      int64_t since, limit;
      ~Check() {
        if (now_us() - since > limit) p.note_stall();
      }
    } check{*this, since, 4 * chunk_us + 100};
    const auto until = std::chrono::steady_clock::now() + spin_time();
    for (int i = 0;; ++i) {
      if (finished() == target_) return;
      if (i % 64 == 63 && std::chrono::steady_clock::now() > until) break;
      cpu_relax();
    }
    for (;;) {  // a worker holding a chunk is slow or descheduled: sleep until it reports
      caller_sleeping_.store(true, std::memory_order_seq_cst);
      const uint32_t w = wake_.load(std::memory_order_seq_cst);
      if (finished() == target_) break;
      wake_.wait(w, std::memory_order_seq_cst);
    }
    caller_sleeping_.store(false, std::memory_order_relaxed);
  }

  // `seen`: the last job published before the thread was started (it may start after the next).
  void worker(int slot, uint32_t seen) {
    for (;;) {
      // Wait for a job newer than `seen`: spin a little, then sleep.
      bool fresh = false;
      const auto until = std::chrono::steady_clock::now() + spin_time();
      for (int i = 0;; ++i) {
        if (gen_of(job_.state.load(std::memory_order_acquire)) != seen) {
          fresh = true;
          break;
        }
        if (i % 64 == 63 && std::chrono::steady_clock::now() > until) break;
        cpu_relax();
      }
      if (!fresh) {
        const uint32_t e = epoch_.load(std::memory_order_seq_cst);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        if (gen_of(job_.state.load(std::memory_order_seq_cst)) == seen)
          epoch_.wait(e, std::memory_order_seq_cst);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        continue;
      }
      seen = gen_of(job_.state.load(std::memory_order_acquire));
      tl_in_pool_job = true;
      work(slot);
      tl_in_pool_job = false;
    }
  }

  void grow(int n) {
    for (; workers_ < n; ++workers_) std::thread([this, slot = workers_ + 1, seen = gen_] { worker(slot, seen); }).detach();
  }

  // Written by the caller (under run_mutex_) only.
  std::mutex run_mutex_;
  int workers_ = 0;          // threads started (slots 1..workers_)
  uint32_t gen_ = 0;         // jobs published
  uint32_t target_ = 0;      // chunks of all jobs so far (wrapping)
  uint32_t caller_done_ = 0; // of them, run by callers
  // The line workers poll: what the current job is. call/ctx are written before state publishes
  // them and not again until every chunk of the job is done.
  struct alignas(64) Job {
    std::atomic<uint64_t> state{0};
    void (*call)(void*, size_t, int) = nullptr;
    void* ctx = nullptr;
    alignas(void*) unsigned char fn[40];
  } job_;
  struct alignas(64) Slot {      // written by the slot's thread (and thieves' claims)
    std::atomic<uint64_t> range{0};
    std::atomic<uint32_t> done{0};  // chunks this worker finished, all jobs (wrapping)
  };
  Slot slots_[kMaxThreads];
  alignas(64) std::atomic<bool> caller_sleeping_{false};
  std::atomic<uint32_t> wake_{0};   // bumped by a report while the caller sleeps
  alignas(64) std::atomic<uint32_t> epoch_{0};   // bumped for sleeping workers: what they wait on
  std::atomic<int> sleepers_{0};
  std::atomic<int64_t> solo_until_us_{0}, solo_span_us_{10000};
  std::mutex error_mutex_;
  std::exception_ptr error_;            // the job's first exception (under error_mutex_)
  std::atomic<bool> failed_{false};     // error_ is set
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
  auto fn = [units, chunks, &body](size_t c, int) { body(units * c / chunks, units * (c + 1) / chunks); };
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
  auto fn = [n, chunks, &body](size_t c, int slot) {
    for (size_t j = n * c / chunks; j < n * (c + 1) / chunks; ++j) body(long(j), slot);
  };
  ThreadPool::instance().run(chunks, threads, fn);
}

}  // namespace fathom::kernels::detail
