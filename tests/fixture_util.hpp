#pragma once
// Helpers shared by the tests that compare fathom with the transformers fixtures in
// tests/fixtures/models (written by tools/gen_model_fixtures.py; see docs/fixtures.md).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "fathom/io/safetensors.hpp"
#include "fathom/model/load.hpp"
#include "fathom/model/taps.hpp"

namespace fixtures {

inline std::filesystem::path model_dir(const std::string& name) {
  return std::filesystem::path(FATHOM_SOURCE_DIR) / "tests" / "fixtures" / "models" / name;
}

struct Expected {
  fathom::io::TensorStore store;
  explicit Expected(const std::filesystem::path& file) : store(fathom::io::load_safetensors(file)) {}
  std::vector<float> f32(const std::string& name) const { return fathom::io::to_f32(store.get(name)); }
  std::vector<int32_t> ids(const std::string& name) const {
    auto v = fathom::io::to_i64(store.get(name));
    return {v.begin(), v.end()};
  }
};

// max |a - b| / max(1, max |b|): the relative error the fixture tests bound.
inline double rel_err(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  double d = 0, m = 1;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, double(std::abs(a[i] - b[i])));
    m = std::max(m, double(std::abs(b[i])));
  }
  return d / m;
}

// Collects named taps of one forward pass as [tokens, cols] matrices by slot.
struct Recorder {
  static constexpr bool enabled = true;
  size_t n = 0;
  std::map<std::string, std::vector<float>> taps;  // "resid_post.3" -> [n, cols]
  void on_tap(fathom::Tap t, int layer, const fathom::TapView& v) {
    std::string key = fathom::tap_name(t);
    if (layer >= 0) key += "." + std::to_string(layer);
    auto& dst = taps[key];
    dst.resize(n * v.cols, NAN);
    for (size_t r = 0; r < v.rows; ++r)
      std::copy_n(v.row(r), v.cols, dst.data() + v.slots[r] * v.cols);
  }
};

}  // namespace fixtures
