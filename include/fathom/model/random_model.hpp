#pragma once
// Randomly initialised models of any shape, built in memory: for benchmarks of real model
// shapes without a checkpoint file (e.g. Qwen2.5-0.5B), and for tests.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/splitmix.hpp"
#include "fathom/io/tensor_names.hpp"
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

// SmolLM2-135M-Instruct's shape (config.json of HuggingFaceTB/SmolLM2-135M-Instruct): the small
// instruct model the void analysis runs, and a large vocabulary over a narrow residual stream.
inline ModelConfig smollm2_135m_config() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.family = Family::Llama;
  c.hidden_size = 576;
  c.num_hidden_layers = 30;
  c.num_attention_heads = 9;
  c.num_key_value_heads = 3;
  c.head_dim = 64;
  c.intermediate_size = 1536;
  c.vocab_size = 49152;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 100000.0;
  c.max_position_embeddings = 8192;
  c.tie_word_embeddings = true;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.torch_dtype = DType::BF16;
  return c;
}

namespace detail {
// splitmix64 -> approximately normal values (sum of uniforms); fast enough for 0.5B weights.
struct FastNormal : SplitMix64 {
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
  for (const auto& t : io::hf_tensors(cfg)) {
    switch (io::hf_role(t.kind)) {
      case io::HfRole::Matrix:
        add(t.name, t.shape, std > 0 ? std : 1.0f / std::sqrt(float(t.shape[1])), 0.f, dtype);
        break;
      case io::HfRole::Norm: add(t.name, t.shape, 0.f, 1.f, DType::F32); break;
      case io::HfRole::Bias: add(t.name, t.shape, 0.02f, 0.f, DType::F32); break;
    }
  }
  return store;
}

inline std::unique_ptr<Model> random_model(const ModelConfig& cfg, DType dtype = DType::BF16,
                                           uint64_t seed = 1, LoadOptions opts = {}) {
  return std::make_unique<Model>(cfg, random_weights(cfg, dtype, seed), opts);
}

}  // namespace fathom
