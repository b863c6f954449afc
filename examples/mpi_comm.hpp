#pragma once
// The few MPI calls distributed eval needs (examples/eval_distributed.hpp), behind a class that is
// a single rank when the program is built without MPI (FATHOM_WITH_MPI undefined, the default:
// -DFATHOM_MPI=ON defines it) or started without an MPI launcher. MPI is initialised only when a
// launcher started the process (mpirun/mpiexec set OMPI_COMM_WORLD_SIZE, srun PMIX_RANK or
// PMI_RANK; FATHOM_MPI=1 forces it, FATHOM_MPI=0 forbids it), so the MPI build run by hand
// behaves exactly as the plain one. Only the main thread calls MPI (MPI_THREAD_FUNNELED); the
// worker threads of a rank never do.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#ifdef FATHOM_WITH_MPI
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1  // the C API only: no deprecated C++ bindings (and their warnings)
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#endif

#include "fathom/core/error.hpp"

namespace examples {

// An error on some rank, raised on every rank (so that none waits forever in a collective call);
// rank 0 reports it. file() is "rank <r>".
struct RankFailure : fathom::Error {
  using Error::Error;
};

class Comm {
 public:
  Comm(int& argc, char**& argv) {
#ifdef FATHOM_WITH_MPI
    if (launched()) {
      int provided = 0;
      MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
      MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
      MPI_Comm_size(MPI_COMM_WORLD, &size_);
      active_ = true;
    }
#else
    (void)argc, (void)argv;
#endif
  }
  ~Comm() {
#ifdef FATHOM_WITH_MPI
    if (active_) MPI_Finalize();
#endif
  }
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool distributed() const { return size_ > 1; }

  // Rank 0's `s`, on every rank.
  std::string bcast(std::string s) const {
#ifdef FATHOM_WITH_MPI
    if (!distributed()) return s;
    uint64_t n = s.size();
    MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    s.resize(size_t(n));
    for (uint64_t at = 0; at < n; at += kChunk)
      MPI_Bcast(s.data() + at, int(std::min<uint64_t>(kChunk, n - at)), MPI_CHAR, 0, MPI_COMM_WORLD);
#endif
    return s;
  }

  // On rank 0 every rank's `s`, by rank; elsewhere nothing.
  std::vector<std::string> gather(const std::string& s) const {
    std::vector<std::string> out;
    if (rank_ == 0) out.push_back(s);
#ifdef FATHOM_WITH_MPI
    if (!distributed()) return out;
    if (rank_ == 0) {
      for (int r = 1; r < size_; ++r) {
        uint64_t n = 0;
        MPI_Recv(&n, 1, MPI_UINT64_T, r, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        std::string t(size_t(n), '\0');
        for (uint64_t at = 0; at < n; at += kChunk)
          MPI_Recv(t.data() + at, int(std::min<uint64_t>(kChunk, n - at)), MPI_CHAR, r, kTag,
                   MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        out.push_back(std::move(t));
      }
    } else {
      uint64_t n = s.size();
      MPI_Send(&n, 1, MPI_UINT64_T, 0, kTag, MPI_COMM_WORLD);
      for (uint64_t at = 0; at < n; at += kChunk)
        MPI_Send(s.data() + at, int(std::min<uint64_t>(kChunk, n - at)), MPI_CHAR, 0, kTag, MPI_COMM_WORLD);
    }
#endif
    return out;
  }

  // Every rank's `s`, by rank, on every rank.
  std::vector<std::string> allgather(const std::string& s) const {
    if (!distributed()) return {s};
    std::string packed;
    for (const auto& t : gather(s)) packed += std::to_string(t.size()) + ":" + t;
    packed = bcast(std::move(packed));
    std::vector<std::string> out;
    for (size_t at = 0; at < packed.size();) {
      const size_t colon = packed.find(':', at);
      const size_t n = std::stoull(packed.substr(at, colon - at));
      out.push_back(packed.substr(colon + 1, n));
      at = colon + 1 + n;
    }
    return out;
  }

  // Runs f() on every rank; when it fails on any rank, every rank throws the RankFailure of the
  // first one that failed ("rank <r>: <its message>").
  template <class F>
  void step(F&& f) const {
    if (!distributed()) {
      f();
      return;
    }
    std::string err;
    try {
      f();
    } catch (const std::exception& e) {
      err = e.what();
      if (err.empty()) err = "unknown error";
    }
    const auto all = allgather(err);
    for (size_t r = 0; r < all.size(); ++r)
      if (!all[r].empty()) throw RankFailure("rank " + std::to_string(r), "", all[r]);
  }

  // Ends every rank at once (an error outside step(), which the other ranks cannot know of).
  [[noreturn]] void abort(int code) const {
#ifdef FATHOM_WITH_MPI
    if (active_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    std::exit(code);
  }

 private:
  static bool launched() {
    if (const char* f = std::getenv("FATHOM_MPI")) return std::strcmp(f, "0") != 0;
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
      if (std::getenv(v)) return true;
    return false;
  }
  static constexpr uint64_t kChunk = uint64_t(1) << 30;  // MPI counts are int
  static constexpr int kTag = 7;
  int rank_ = 0, size_ = 1;
  bool active_ = false;
};

// examples::guarded for a program that may run as several ranks: a fathom error becomes a
// one-line message and exit code 1. A RankFailure (raised on every rank alike) is printed by rank
// 0 alone; any other error on a rank of a distributed run is printed by that rank and ends all
// ranks (MPI_Abort), since the others cannot know of it.
template <class F>
int guarded(const Comm& comm, F&& main_body) {
  try {
    return main_body();
  } catch (const RankFailure& e) {
    if (comm.rank() == 0) std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const fathom::Error& e) {
    if (!comm.distributed()) {
      std::cerr << "error: " << e.what() << "\n";
      return 1;
    }
    std::cerr << "error: rank " << comm.rank() << ": " << e.what() << "\n";
    comm.abort(1);
  }
}

}  // namespace examples
