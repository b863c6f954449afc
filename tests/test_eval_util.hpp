#pragma once
// Shared by the eval tests: a byte tokenizer, a tiny randomly initialised model whose LM head
// makes "read out row t of the head" predict token t by a wide margin, and a policy that forces
// the readout, so a test decides what the model answers.
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "fathom/model/depth_policy.hpp"
#include "fathom/io/tensor_store.hpp"
#include "fathom/model/model.hpp"
#include "fathom/tokenizer/any_tokenizer.hpp"

namespace evaltest {

// Token id = byte + 3; 1 = BOS, 2 = EOS (as llama2.c), 0 = unk.
struct ByteTokenizer {
  std::vector<int32_t> encode(std::string_view s, bool add_special) const {
    std::vector<int32_t> ids;
    if (add_special) ids.push_back(1);
    for (unsigned char c : s) ids.push_back(int32_t(c) + 3);
    return ids;
  }
  std::string decode(std::span<const int32_t> ids, bool) const {
    std::string s;
    for (int32_t i : ids)
      if (i >= 3) s += char(i - 3);
    return s;
  }
  int32_t bos_id() const { return 1; }
  std::vector<int32_t> eos_ids() const { return {2}; }
  size_t vocab_size() const { return 259; }
};

inline fathom::tok::AnyTokenizer byte_tokenizer() { return fathom::tok::AnyTokenizer(ByteTokenizer{}); }

constexpr int64_t kHidden = 64, kVocab = 259;

// A Llama-style model (2 layers unless asked) with random weights (seeded). lm_head rows are ±1/sqrt(H), the
// final norm weight is 4, so feeding row t to the readout gives token t a logit ≈ 32 and every
// other token |logit| ≲ 14.
inline std::unique_ptr<fathom::Model> tiny_model(int64_t context = 256, uint64_t seed = 7,
                                                 int layers = 2) {
  using namespace fathom;
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = kHidden, c.num_hidden_layers = layers, c.num_attention_heads = 4;
  c.num_key_value_heads = 2, c.head_dim = 16, c.intermediate_size = 96, c.vocab_size = kVocab;
  c.rms_norm_eps = 1e-5, c.max_position_embeddings = context, c.tie_word_embeddings = false;
  c.bos_token_id = 1, c.eos_token_ids = {2};
  auto store = std::make_shared<io::TensorStore>();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, auto fill) {
    size_t n = 1;
    for (auto d : shape) n *= size_t(d);
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = fill(i);
    std::vector<std::byte> b(n * 4);
    std::memcpy(b.data(), v.data(), b.size());
    store->add_owned(name, DType::F32, std::move(shape), std::move(b), "tiny");
  };
  const float s = 1.f / std::sqrt(float(kHidden));
  auto gauss = [&](float scale) { return [&, scale](size_t) { return nd(rng) * scale; }; };
  auto ones = [](size_t) { return 1.f; };
  const int64_t H = kHidden, q = 4 * 16, kv = 2 * 16, I = 96;
  add("model.embed_tokens.weight", {kVocab, H}, gauss(1.f));
  add("model.norm.weight", {H}, [](size_t) { return 4.f; });
  add("lm_head.weight", {kVocab, H}, [&](size_t) { return (rng() & 1) ? s : -s; });
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H}, ones);
    add(p + "post_attention_layernorm.weight", {H}, ones);
    add(p + "self_attn.q_proj.weight", {q, H}, gauss(s));
    add(p + "self_attn.k_proj.weight", {kv, H}, gauss(s));
    add(p + "self_attn.v_proj.weight", {kv, H}, gauss(s));
    add(p + "self_attn.o_proj.weight", {H, q}, gauss(s));
    add(p + "mlp.gate_proj.weight", {I, H}, gauss(s));
    add(p + "mlp.up_proj.weight", {I, H}, gauss(s));
    add(p + "mlp.down_proj.weight", {H, I}, gauss(1.f / std::sqrt(float(I))));
  }
  store->set_origin("tiny");
  return std::make_unique<Model>(c, store);
}

// Reads out row `script[k]` of the LM head at its k-th readout (the last entry repeats), so the
// model predicts exactly the scripted tokens. Runs every layer.
struct Forcer : fathom::PolicyBase {
  static constexpr bool observes_layers = false;
  Forcer(const fathom::Model* m, std::vector<int32_t> s) : model(m), script(std::move(s)) {}
  const fathom::Model* model = nullptr;
  std::vector<int32_t> script;
  size_t k = 0;
  std::vector<float> row;
  std::span<const float> readout(const fathom::TokenInfo&, State&, std::span<const float>) {
    const int32_t t = script[std::min(k++, script.size() - 1)];
    const auto& U = model->readout().unembed;  // f32 rows [vocab, hidden]
    const float* r = reinterpret_cast<const float*>(U.data) + size_t(t) * U.cols;
    row.assign(r, r + U.cols);
    return row;
  }
};
static_assert(fathom::DepthPolicy<Forcer>);

}  // namespace evaltest
