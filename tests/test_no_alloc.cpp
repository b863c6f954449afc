// Decoding allocates nothing per token: a counting global operator new around decode steps under
// every kind of policy (run, skip with propagated K/V, exit, in-stream rewrite, lens readout) with
// a usage trace attached. Its own program (tests/CMakeLists.txt): replacing the global operator
// new cannot happen inside the namespaces the batch programs wrap each file in.
#if defined(__GNUC__) && !defined(__clang__)
// GCC pairs the malloc inside the replaced operator new with every inlined delete and warns.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "fathom/depth/policies.hpp"
#include "fathom/model/batch_session.hpp"
#include "fathom/model/load.hpp"
#include "fathom/model/session.hpp"

namespace {
std::atomic<bool> counting{false};
std::atomic<size_t> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace fathom;

namespace {
// Allocations made by fn().
template <class F>
size_t allocations_in(F&& fn) {
  allocations = 0;
  counting = true;
  fn();
  counting = false;
  return allocations;
}
}  // namespace

TEST_CASE("the counter sees allocations, those of a forward pass included") {
  CHECK(allocations_in([] { std::vector<int> v(10); (void)v; }) >= 1);
  // A trace that keeps per-token records must grow, so decoding with one does allocate.
  const auto dir = std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models/llama_f32";
  auto model = load_model(dir);
  Session s(*model);
  Trace records(model->n_layers(), true);
  s.set_trace(&records);
  const int32_t t = 5;
  s.forward(std::span<const int32_t>(&t, 1), Phase::PP);
  CHECK(allocations_in([&] { s.forward(std::span<const int32_t>(&t, 1), Phase::RG); }) >= 1);
}

TEST_CASE("decode steps allocate nothing under any registered policy") {
  const auto dir = std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models/llama_f32";
  auto model = load_model(dir);
  const std::vector<int32_t> prompt = {1, 17, 99, 3, 250, 42};
  for (const char* name : {"full", "lac:0.8", "lac-instream:0.5", "lac-trace:0.8", "lac-exit:0.9",
                           "static:1", "static:pp=;rg=0,2", "early-exit:state:0.5",
                           "early-exit:softmax_max:0.1", "logit-lens:2", "cos-skip:0.5"}) {
    for (auto [kv, precision] : {std::pair{KvStrategy::Propagate, KvPrecision::F32},
                                 std::pair{KvStrategy::Exact, KvPrecision::F32},
                                 std::pair{KvStrategy::None, KvPrecision::F32},
                                 std::pair{KvStrategy::Propagate, KvPrecision::BF16}}) {
      CAPTURE(name);
      CAPTURE(int(kv));
      CAPTURE(int(precision));
      Session s(*model, SessionOptions{64, kv, precision});
      Trace trace(model->n_layers(), false);
      s.set_trace(&trace);
      with_policy(*model, parse_policy(name), [&](auto& policy) {
        s.forward(prompt, Phase::PP, policy);
        int32_t next = 5;
        auto step = [&] { s.forward(std::span<const int32_t>(&next, 1), Phase::RG, policy); };
        for (int i = 0; i < 3; ++i) step();  // buffers grow to their decode sizes
        CHECK(allocations_in([&] {
                for (int i = 0; i < 8; ++i) step();
              }) == 0);
      });
      CHECK(trace.usage(Phase::RG).tokens == 11);
    }
  }
}

TEST_CASE("batched decode steps allocate nothing once warmed, with rows leaving the batch") {
  const auto dir = std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models/qwen2_bf16";
  for (WeightFormat wf : {WeightFormat::AsStored, WeightFormat::Q8}) {
    auto model = load_model(dir, {wf});
    for (std::string name : {"full", "lac:0.8", "static:pp=;rg=0", "early-exit:softmax_max:0.1", "cos-skip:0.5"}) {
      for (KvStrategy kv : {KvStrategy::Propagate, KvStrategy::Exact, KvStrategy::None}) {
        CAPTURE(name);
        CAPTURE(int(wf));
        CAPTURE(int(kv));
        BatchSession bs(*model, 4, SessionOptions{64, kv});
        std::vector<std::unique_ptr<Trace>> traces;
        with_policy(*model, parse_policy(name), [&](auto& proto) {
          using P = std::decay_t<decltype(proto)>;
          std::vector<P> pol(4, proto);
          std::vector<P*> ptr;
          std::vector<uint32_t> slots;
          std::vector<int32_t> toks;
          for (uint32_t k = 0; k < 4; ++k) {
            traces.push_back(std::make_unique<Trace>(model->n_layers(), false));
            bs.session(k).set_trace(traces.back().get());
            const std::vector<int32_t> prompt(2 + k, int32_t(7 + k));
            bs.session(k).forward(prompt, Phase::PP, pol[k]);
            ptr.push_back(&pol[k]), slots.push_back(k), toks.push_back(int32_t(11 + k));
          }
          auto step = [&](size_t n) {
            bs.step(std::span<const uint32_t>(slots).first(n), std::span<const int32_t>(toks).first(n),
                    std::span<P* const>(ptr).first(n));
          };
          // Buffers grow to their sizes; a single row runs gemv's own path, whose thread-local
          // input buffers the first one-row step makes.
          for (size_t n : {4, 4, 1}) step(n);
          CHECK(allocations_in([&] {
                  for (size_t n : {4, 4, 3, 2, 1, 4}) step(n);
                }) == 0);
        });
      }
    }
  }
}
