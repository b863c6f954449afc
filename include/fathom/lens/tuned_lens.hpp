#pragma once
// The tuned lens (docs/lenses.md), a Lens (lens/lens.hpp): per hidden_states index i < L an
// affine translator  h -> h + A_i h + b_i; hidden_states[L] (= resid_post[L-1], the last block's
// output) has none: translate(L, ...) is the identity.
//
// On disk (fathom's layout, written by tools/convert_tuned_lens.py and by lens training):
//   <dir>/config.json          tuned-lens's TunedLensConfig (d_model, num_hidden_layers, bias, ...)
//   <dir>/params.safetensors   "{i}.weight" [d_model, d_model] (torch Linear: out = W h + b) and
//                              "{i}.bias" [d_model], i = 0..num_hidden_layers-1, f32/bf16/f16
#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/io/json.hpp"
#include "fathom/lens/lens.hpp"
#include "fathom/io/safetensors.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/model/model.hpp"

namespace fathom::lens {

class TunedLens {
 public:
  TunedLens() = default;
  // Zero translators: equal to the logit lens until trained.
  TunedLens(size_t n_layers, size_t hidden)
      : L_(n_layers), H_(hidden), w_(n_layers * hidden * hidden, 0.f), b_(n_layers * hidden, 0.f) {}

  size_t n_layers() const { return L_; }
  size_t hidden() const { return H_; }
  bool identity(size_t i) const { return i >= L_; }

  float* weight(size_t i) { return w_.data() + i * H_ * H_; }  // [hidden, hidden]
  const float* weight(size_t i) const { return w_.data() + i * H_ * H_; }
  float* bias(size_t i) { return b_.data() + i * H_; }  // [hidden]
  const float* bias(size_t i) const { return b_.data() + i * H_; }
  std::vector<float>& weights() { return w_; }  // [L, hidden, hidden]
  std::vector<float>& biases() { return b_; }   // [L, hidden]
  const std::vector<float>& weights() const { return w_; }
  const std::vector<float>& biases() const { return b_; }

  // out = h + W_i h + b_i for i < L, a copy of h for i == L. h, out: [n, hidden], distinct.
  void translate(size_t i, const float* h, float* out, size_t n, size_t hidden = 0) const {
    if (hidden && hidden != H_) throw UsageError("", "hidden", "lens width differs from the model");
    if (i > L_) throw UsageError("", "layer", "translator index " + std::to_string(i) + " > " +
                                                  std::to_string(L_));
    if (i == L_) {
      std::copy_n(h, n * H_, out);
      return;
    }
    kernels::gemm(kernels::MatrixView{DType::F32, H_, H_, weight(i)}, h, n, out);
    const float* b = bias(i);
    for (size_t r = 0; r < n; ++r)
      for (size_t c = 0; c < H_; ++c) out[r * H_ + c] += h[r * H_ + c] + b[c];
  }

  // Throws unless the lens fits the model (same width and depth).
  void check_fits(const Model& m, const std::string& origin = {}) const {
    if (H_ != m.hidden())
      throw ConfigError(origin, "d_model", std::to_string(H_) + " differs from the model's hidden " +
                                               std::to_string(m.hidden()));
    if (L_ != m.n_layers())
      throw ConfigError(origin, "num_hidden_layers",
                        std::to_string(L_) + " differs from the model's " +
                            std::to_string(m.n_layers()));
  }

  // Loads <dir>/config.json + <dir>/params.safetensors (or a .safetensors file with config.json
  // beside it).
  static TunedLens load(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    if (!fs::exists(path)) throw IoError(path.string(), "", "lens folder or file not found");
    const fs::path dir = fs::is_directory(path) ? path : path.parent_path();
    const fs::path params = fs::is_directory(path) ? dir / "params.safetensors" : path;
    const fs::path cfg_path = dir / "config.json";
    if (!fs::exists(cfg_path)) throw IoError(cfg_path.string(), "", "lens config not found");
    if (!fs::exists(params)) throw IoError(params.string(), "", "lens parameters not found");
    const Shape shape = read_config(io::read_json_file(cfg_path), cfg_path.string());
    return from_store(shape, io::load_safetensors(params), params.string());
  }

  // The same from the two files' bytes in memory (tests, fuzzing); the labels name them in errors.
  static TunedLens from_bytes(std::string_view config_json, std::span<const std::byte> params,
                              const std::string& config_label = "config.json",
                              const std::string& params_label = "params.safetensors") {
    const Shape shape = read_config(io::parse_json(config_json, config_label), config_label);
    io::TensorStore store;
    store.set_origin(params_label);
    io::detail::add_safetensors_bytes(store, params, params_label);
    return from_store(shape, store, params_label);
  }

  // Writes <dir>/config.json and <dir>/params.safetensors (f32). `base_model` is recorded as
  // base_model_name_or_path.
  void save(const std::filesystem::path& dir, const std::string& base_model = {}) const {
    std::filesystem::create_directories(dir);
    std::vector<io::TensorView> ts;
    ts.reserve(2 * L_);
    for (size_t i = 0; i < L_; ++i) {
      const std::string k = std::to_string(i);
      ts.push_back(io::TensorView{k + ".weight", DType::F32, {int64_t(H_), int64_t(H_)},
                                  reinterpret_cast<const std::byte*>(weight(i)),
                                  H_ * H_ * sizeof(float), {}});
      ts.push_back(io::TensorView{k + ".bias", DType::F32, {int64_t(H_)},
                                  reinterpret_cast<const std::byte*>(bias(i)), H_ * sizeof(float),
                                  {}});
    }
    io::save_safetensors(dir / "params.safetensors", ts,
                         {{"index_convention", "translator i reads hidden_states[i] = resid_pre[i]"}});
    io::Json cfg = {{"base_model_name_or_path", base_model},
                    {"d_model", H_},
                    {"num_hidden_layers", L_},
                    {"bias", true},
                    {"base_model_revision", nullptr},
                    {"unembed_hash", nullptr},
                    {"lens_type", "linear_tuned_lens"}};
    const auto cp = dir / "config.json";
    std::ofstream out(cp);
    if (!out) throw IoError(cp.string(), "", "cannot open for writing");
    out << cfg.dump(2) << "\n";
    out.flush();  // else a full disk shows only when the destructor closes the file, unchecked
    if (!out) throw IoError(cp.string(), "", "write failed (disk full?)");
  }

 private:
  struct Shape { size_t H = 0, L = 0; bool bias = true; };

  static Shape read_config(const io::Json& cfg, const std::string& cf) {
    if (!cfg.is_object()) throw ConfigError(cf, "", "expected a JSON object");
    auto positive = [&](const char* key) -> size_t {
      auto it = cfg.find(key);
      if (it == cfg.end()) throw ConfigError(cf, key, "missing");
      if (!it->is_number_integer() || it->get<int64_t>() <= 0)
        throw ConfigError(cf, key, "expected a positive integer");
      return size_t(it->get<int64_t>());
    };
    Shape s;
    s.H = positive("d_model"), s.L = positive("num_hidden_layers");
    if (auto it = cfg.find("lens_type"); it != cfg.end() && *it != "linear_tuned_lens")
      throw UnsupportedError(cf, "lens_type", "only linear_tuned_lens is supported");
    if (auto it = cfg.find("bias"); it != cfg.end()) {
      if (!it->is_boolean()) throw ConfigError(cf, "bias", "expected true or false");
      s.bias = it->get<bool>();
    }
    return s;
  }

  static TunedLens from_store(const Shape& s, const io::TensorStore& store, const std::string& params) {
    const size_t H = s.H, L = s.L;
    // Every tensor is checked before the lens is allocated: a config claiming a huge d_model or
    // depth fails at the first missing or mis-shaped tensor (whose bytes the safetensors reader
    // has bounded by the file size), not in an L·H² allocation.
    for (size_t i = 0; i < L; ++i) {
      const std::string k = std::to_string(i);
      (void)store.get(k + ".weight", {int64_t(H), int64_t(H)});
      if (s.bias) (void)store.get(k + ".bias", {int64_t(H)});
    }
    if (store.contains(std::to_string(L) + ".weight"))
      throw FormatError(params, std::to_string(L) + ".weight",
                        "more translators than num_hidden_layers (the last layer has none)");
    TunedLens lens(L, H);
    for (size_t i = 0; i < L; ++i) {
      const std::string k = std::to_string(i);
      auto w = io::to_f32(store.get(k + ".weight"));
      std::copy(w.begin(), w.end(), lens.weight(i));
      if (s.bias) {
        auto b = io::to_f32(store.get(k + ".bias"));
        std::copy(b.begin(), b.end(), lens.bias(i));
      }
    }
    return lens;
  }

  size_t L_ = 0, H_ = 0;
  std::vector<float> w_;  // [L, hidden, hidden]
  std::vector<float> b_;  // [L, hidden]
};
static_assert(Lens<TunedLens>);

}  // namespace fathom::lens
