#pragma once
// ModelConfig: everything the forward pass needs from a Hugging Face config.json (or a llama2.c
// header). Parsed by io/config.hpp; fields are named as in transformers.
#include <cstdint>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"

namespace fathom {

enum class Family : uint8_t { Llama, Mistral, Qwen2, Qwen3 };

constexpr const char* family_name(Family f) {
  switch (f) {
    case Family::Llama: return "llama";
    case Family::Mistral: return "mistral";
    case Family::Qwen2: return "qwen2";
    case Family::Qwen3: return "qwen3";
  }
  return "?";
}

struct RopeScaling {
  enum class Type : uint8_t { None, Linear, Llama3, Factors } type = Type::None;
  double factor = 1.0;                        // linear and llama3
  double low_freq_factor = 1.0;               // llama3
  double high_freq_factor = 4.0;              // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
  // Factors: frequency i is divided by freq_factors[i] (head_dim / 2 of them): llama.cpp's
  // rope_freqs.weight, the form a GGUF file gives Llama 3.1 / 3.2's llama3 scaling in.
  std::vector<double> freq_factors;
};

struct ModelConfig {
  std::string architecture;          // "LlamaForCausalLM", ... or "llama2.c"
  Family family = Family::Llama;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;   // = num_attention_heads when absent
  int64_t head_dim = 0;              // explicit in config, else hidden_size / num_attention_heads
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  int64_t sliding_window = 0;        // 0: full attention (Mistral null, Qwen2 use_sliding_window=false)
  bool attention_bias = false;       // q/k/v (Qwen2: always true); o_proj never has a bias here
  bool qk_norm = false;              // per-head RMSNorm of q and k before RoPE (Qwen3)
  int64_t bos_token_id = -1;         // -1: none
  std::vector<int64_t> eos_token_ids;
  DType torch_dtype = DType::F32;    // as declared; the tensors' own dtypes are authoritative
};

}  // namespace fathom
