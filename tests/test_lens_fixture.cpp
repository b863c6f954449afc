// fathom's tuned-lens readout equals PyPI tuned-lens's on a fixture lens (tools/gen_lens_fixtures.py:
// a tiny random Llama, a lens trained briefly by the package, converted by
// tools/convert_tuned_lens.py), and its logit lens equals the package's LogitLens.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include "fathom/io/safetensors.hpp"
#include "fathom/depth/lens_policy.hpp"
#include "fathom/model/load.hpp"

using namespace fathom;

namespace {
const std::filesystem::path kDir = std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/lens";

// max |a - b| / max |b| over one [vocab] row.
double rel_err(std::span<const float> a, const float* b) {
  double num = 0, den = 0;
  for (size_t v = 0; v < a.size(); ++v)
    num = std::max(num, double(std::abs(a[v] - b[v]))), den = std::max(den, double(std::abs(b[v])));
  return num / std::max(den, 1e-30);
}
}  // namespace

TEST_CASE("tuned lens readout equals the tuned-lens package's") {
  auto model = load_model(kDir / "model");
  auto lens = lens::TunedLens::load(kDir / "lens");
  lens.check_fits(*model);
  const auto exp = io::load_safetensors(kDir / "expected.safetensors");
  const auto tok64 = io::to_i64(exp.get("tokens"));
  const std::vector<int32_t> tokens(tok64.begin(), tok64.end());
  const size_t L = model->n_layers(), V = model->vocab(), T = tokens.size();
  const auto tuned = io::to_f32(exp.get("logits", {int64_t(L + 1), int64_t(T), int64_t(V)}));
  const auto logit = io::to_f32(exp.get("logit_lens", {int64_t(L), int64_t(T), int64_t(V)}));

  double worst = 0, worst_logit = 0, lens_effect = 0;
  Session s(*model);
  lens::read_all_layers(s, tokens, lens, [&](uint32_t t, size_t i, std::span<const float> lg) {
    worst = std::max(worst, rel_err(lg, tuned.data() + (i * T + t) * V));
    if (i < L) lens_effect = std::max(lens_effect, rel_err(lg, logit.data() + (i * T + t) * V));
  });
  Session s2(*model);
  lens::read_all_layers(s2, tokens, lens::LogitLens{L},
                        [&](uint32_t t, size_t i, std::span<const float> lg) {
                          if (i < L)
                            worst_logit = std::max(worst_logit, rel_err(lg, logit.data() + (i * T + t) * V));
                        });
  MESSAGE("tuned lens rel err " << worst << ", logit lens rel err " << worst_logit
                                << ", tuned vs logit lens " << lens_effect);
  CHECK(worst < 1e-5);
  CHECK(worst_logit < 1e-5);
  CHECK(lens_effect > 1e-2);  // the fixture lens is far from the identity: the test can fail
}

TEST_CASE("tuned lens files with wrong shapes are rejected by name") {
  const auto dir = std::filesystem::temp_directory_path() / "fathom-lens-bad";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kDir / "lens/params.safetensors", dir / "params.safetensors");
  {
    std::ofstream o(dir / "config.json");
    o << R"({"d_model": 16, "num_hidden_layers": 3})";
  }
  try {
    lens::TunedLens::load(dir);
    FAIL("expected FormatError");
  } catch (const FormatError& e) {
    CHECK(e.field() == "0.weight");
  }
  {
    std::ofstream o(dir / "config.json");
    o << R"({"d_model": 32, "num_hidden_layers": 2})";
  }
  CHECK_THROWS_AS(lens::TunedLens::load(dir), FormatError);  // a translator too many
  {
    std::ofstream o(dir / "config.json");
    o << R"({"d_model": 32})";
  }
  CHECK_THROWS_AS(lens::TunedLens::load(dir), ConfigError);
  std::filesystem::remove_all(dir);
}
