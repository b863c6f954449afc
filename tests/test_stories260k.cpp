// The real stories260K model (llama2.c checkpoint in ../shared, RoPE rows permuted at load)
// reproduces its known greedy continuation from BOS, token for token and as text.
#include <doctest/doctest.h>

#include <string>

#include "fathom/core/shared_path.hpp"
#include "fathom/depth/lac.hpp"
#include "fathom/model/generate.hpp"
#include "fathom/model/load.hpp"
#include "fathom/tokenizer/llama2c_tokenizer.hpp"
#include "io_test_util.hpp"

using namespace fathom;

TEST_CASE("stories260K greedy from BOS reproduces the known story") {
  auto model = load_model(shared_file("models/stories260K/stories260K.bin"));
  auto tok = tok::Llama2cTokenizer::load(shared_file("models/stories260K/tok512.bin"), model->vocab());
  const std::vector<int32_t> bos = {1};
  GenerateOptions opt;
  opt.max_new_tokens = 40;
  Session s(*model);
  auto g = generate(s, bos, opt);
  std::vector<int32_t> all = bos;
  all.insert(all.end(), g.tokens.begin(), g.tokens.end());
  const std::string text = tok.decode(all);
  CHECK(text.rfind("Once upon a time, there was a little girl named Lily. She loved to play "
                   "outside in the park.", 0) == 0);

  SUBCASE("the same story with Q8 weights and with the prompt decoded token by token") {
    auto q8 = load_model(shared_file("models/stories260K/stories260K.bin"), {WeightFormat::Q8});
    Session sq(*q8);
    auto gq = generate(sq, bos, opt);
    CHECK(std::equal(gq.tokens.begin(), gq.tokens.begin() + 20, g.tokens.begin()));
  }
  SUBCASE("LAC trace-only generates the identical story") {
    Trace trace(model->n_layers());
    LAC lac(0.8, LacMode::TraceOnly);
    Session sl(*model);
    sl.set_trace(&trace);
    CHECK(generate(sl, bos, opt, lac).tokens == g.tokens);
    CHECK(trace.usage(Phase::RG).tokens == g.tokens.size() - 1);
  }
}

TEST_CASE("a missing shared folder is reported with where it looked") {
  const test::ScopedEnv shared("FATHOM_SHARED", "/nonexistent/shared");
  CHECK_THROWS_WITH_AS(shared_file("models/stories260K/stories260K.bin"),
                       doctest::Contains("/nonexistent/shared"), IoError);
}
