#pragma once
// Randomly initialised models of any shape, built in memory: for benchmarks of real model
// shapes without a checkpoint file (e.g. Qwen2.5-0.5B), and for tests.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/io/tensor_store.hpp"
#include "fathom/model/model.hpp"

namespace fathom {

// Qwen2.5-0.5B's shape (config.json of Qwen/Qwen2.5-0.5B).
inline ModelConfig qwen25_05b_config() {
  ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.family = Family::Qwen2;
  c.hidden_size = 896;
  c.num_hidden_layers = 24;
  c.num_attention_heads = 14;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.intermediate_size = 4864;
  c.vocab_size = 151936;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1000000.0;
  c.max_position_embeddings = 32768;
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.bos_token_id = -1;
  c.eos_token_ids = {151643};
  c.torch_dtype = DType::BF16;
  return c;
}

namespace detail {
// splitmix64 -> approximately normal values (sum of uniforms); fast enough for 0.5B weights.
struct FastNormal {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float operator()() {  // sum of 4 uniforms in [0,1): mean 2, variance 1/3
    const uint64_t r = next();
    float acc = 0;
    for (int i = 0; i < 4; ++i) acc += float((r >> (16 * i)) & 0xffff) / 65536.f;
    return (acc - 2.0f) * 1.7320508f;
  }
};
}  // namespace detail

// Every tensor of `cfg` with Hugging Face names: matrices ~ N(0, std²) (std = 1/sqrt(fan_in)
// when std <= 0), norm weights 1, biases ~ N(0, 0.02²); matrices stored as `dtype`.
inline std::shared_ptr<io::TensorStore> random_weights(const ModelConfig& cfg, DType dtype,
                                                       uint64_t seed = 1, float std = 0.f) {
  auto store = std::make_shared<io::TensorStore>();
  store->set_origin("random:" + cfg.architecture);
  detail::FastNormal rng{seed};
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float offset,
                 DType dt) {
    size_t n = 1;
    for (auto d : shape) n *= size_t(d);
    std::vector<std::byte> bytes(n * dtype_size(dt));
    if (dt == DType::F32) {
      auto* p = reinterpret_cast<float*>(bytes.data());
      for (size_t i = 0; i < n; ++i) p[i] = offset + scale * rng();
    } else {
      auto* p = reinterpret_cast<uint16_t*>(bytes.data());
      for (size_t i = 0; i < n; ++i) p[i] = f32_to_bf16(offset + scale * rng());
    }
    store->add_owned(name, dt, std::move(shape), std::move(bytes), "random");
  };
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, V = cfg.vocab_size,
                hd = cfg.head_dim, q = cfg.num_attention_heads * hd, kv = cfg.num_key_value_heads * hd;
  auto mat = [&](const std::string& name, int64_t rows, int64_t cols) {
    add(name, {rows, cols}, std > 0 ? std : 1.0f / std::sqrt(float(cols)), 0.f, dtype);
  };
  mat("model.embed_tokens.weight", V, H);
  add("model.norm.weight", {H}, 0.f, 1.f, DType::F32);
  if (!cfg.tie_word_embeddings) mat("lm_head.weight", V, H);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H}, 0.f, 1.f, DType::F32);
    add(p + "post_attention_layernorm.weight", {H}, 0.f, 1.f, DType::F32);
    mat(p + "self_attn.q_proj.weight", q, H);
    mat(p + "self_attn.k_proj.weight", kv, H);
    mat(p + "self_attn.v_proj.weight", kv, H);
    mat(p + "self_attn.o_proj.weight", H, q);
    if (cfg.attention_bias) {
      add(p + "self_attn.q_proj.bias", {q}, 0.02f, 0.f, DType::F32);
      add(p + "self_attn.k_proj.bias", {kv}, 0.02f, 0.f, DType::F32);
      add(p + "self_attn.v_proj.bias", {kv}, 0.02f, 0.f, DType::F32);
    }
    if (cfg.qk_norm) {
      add(p + "self_attn.q_norm.weight", {hd}, 0.f, 1.f, DType::F32);
      add(p + "self_attn.k_norm.weight", {hd}, 0.f, 1.f, DType::F32);
    }
    mat(p + "mlp.gate_proj.weight", I, H);
    mat(p + "mlp.up_proj.weight", I, H);
    mat(p + "mlp.down_proj.weight", H, I);
  }
  return store;
}

inline std::unique_ptr<Model> random_model(const ModelConfig& cfg, DType dtype = DType::BF16,
                                           uint64_t seed = 1, LoadOptions opts = {}) {
  return std::make_unique<Model>(cfg, random_weights(cfg, dtype, seed), opts);
}

}  // namespace fathom
