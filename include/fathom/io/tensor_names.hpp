#pragma once
// The Hugging Face (transformers) names and shapes of a decoder's tensors, spelled once. The Model
// reads these names, save_model writes them, the GGUF and llama2.c loaders rename their tensors to
// them and random models create them; with one table a name cannot drift between them.
//
//   model.embed_tokens.weight                        [vocab, hidden]
//   model.norm.weight                                [hidden]
//   lm_head.weight                                   [vocab, hidden]   absent when tied
//   model.layers.N.input_layernorm.weight            [hidden]
//   model.layers.N.post_attention_layernorm.weight   [hidden]
//   model.layers.N.self_attn.{q,k,v}_proj.weight     [heads·head_dim, hidden]  (k, v: kv heads)
//   model.layers.N.self_attn.o_proj.weight           [hidden, heads·head_dim]
//   model.layers.N.self_attn.{q,k,v}_proj.bias       [rows of the weight]      attention_bias
//   model.layers.N.self_attn.{q,k}_norm.weight       [head_dim]                qk_norm
//   model.layers.N.mlp.{gate,up}_proj.weight         [intermediate, hidden]
//   model.layers.N.mlp.down_proj.weight              [hidden, intermediate]
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/model_config.hpp"

namespace fathom::io {

enum class HfTensor : uint8_t {
  Embed, FinalNorm, LmHead,  // once per model
  AttnNorm, MlpNorm, Wq, Wk, Wv, Wo, Bq, Bk, Bv, QNorm, KNorm, Gate, Up, Down,  // per layer
};

constexpr bool per_layer(HfTensor t) { return t >= HfTensor::AttnNorm; }

// What a tensor is, for code that fills or converts tensors by kind (norm weights start at 1).
enum class HfRole : uint8_t { Matrix, Norm, Bias };

constexpr HfRole hf_role(HfTensor t) {
  switch (t) {
    case HfTensor::FinalNorm: case HfTensor::AttnNorm: case HfTensor::MlpNorm:
    case HfTensor::QNorm: case HfTensor::KNorm: return HfRole::Norm;
    case HfTensor::Bq: case HfTensor::Bk: case HfTensor::Bv: return HfRole::Bias;
    default: return HfRole::Matrix;
  }
}

// The whole name of a once-per-model tensor; the part after "model.layers.N." of a per-layer one.
constexpr std::string_view hf_suffix(HfTensor t) {
  switch (t) {
    case HfTensor::Embed: return "model.embed_tokens.weight";
    case HfTensor::FinalNorm: return "model.norm.weight";
    case HfTensor::LmHead: return "lm_head.weight";
    case HfTensor::AttnNorm: return "input_layernorm.weight";
    case HfTensor::MlpNorm: return "post_attention_layernorm.weight";
    case HfTensor::Wq: return "self_attn.q_proj.weight";
    case HfTensor::Wk: return "self_attn.k_proj.weight";
    case HfTensor::Wv: return "self_attn.v_proj.weight";
    case HfTensor::Wo: return "self_attn.o_proj.weight";
    case HfTensor::Bq: return "self_attn.q_proj.bias";
    case HfTensor::Bk: return "self_attn.k_proj.bias";
    case HfTensor::Bv: return "self_attn.v_proj.bias";
    case HfTensor::QNorm: return "self_attn.q_norm.weight";
    case HfTensor::KNorm: return "self_attn.k_norm.weight";
    case HfTensor::Gate: return "mlp.gate_proj.weight";
    case HfTensor::Up: return "mlp.up_proj.weight";
    case HfTensor::Down: return "mlp.down_proj.weight";
  }
  return {};
}

// "model.layers.<layer>.<suffix>"; `layer` is text so that messages can name every layer ("*").
inline std::string hf_layer_name(HfTensor t, std::string_view layer) {
  return "model.layers." + std::string(layer) + "." + std::string(hf_suffix(t));
}

// The name of tensor `t` (of layer `layer` when it is a per-layer tensor).
inline std::string hf_name(HfTensor t, int64_t layer = -1) {
  if (!per_layer(t)) return std::string(hf_suffix(t));
  if (layer < 0)
    throw UsageError("", std::string(hf_suffix(t)), "a per-layer tensor needs a layer index");
  return hf_layer_name(t, std::to_string(layer));
}

struct HfTensorSpec {
  HfTensor kind;
  int64_t layer;               // -1 for once-per-model tensors
  std::string name;
  std::vector<int64_t> shape;  // as the table above: [rows, cols] or [n]
};

// Every tensor a model of `cfg` reads, in one fixed order: embedding, final norm, lm_head (only
// when untied), then per layer the two norms, q/k/v/o, q/k/v biases (attention_bias), q/k norms
// (qk_norm), gate/up/down. Random weights are drawn in this order, so it must not change.
inline std::vector<HfTensorSpec> hf_tensors(const ModelConfig& cfg) {
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, V = cfg.vocab_size,
                hd = cfg.head_dim, q = cfg.num_attention_heads * hd, kv = cfg.num_key_value_heads * hd;
  std::vector<HfTensorSpec> out;
  auto add = [&](HfTensor t, int64_t layer, std::vector<int64_t> shape) {
    out.push_back({t, layer, hf_name(t, layer), std::move(shape)});
  };
  add(HfTensor::Embed, -1, {V, H});
  add(HfTensor::FinalNorm, -1, {H});
  if (!cfg.tie_word_embeddings) add(HfTensor::LmHead, -1, {V, H});
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    add(HfTensor::AttnNorm, l, {H});
    add(HfTensor::MlpNorm, l, {H});
    add(HfTensor::Wq, l, {q, H});
    add(HfTensor::Wk, l, {kv, H});
    add(HfTensor::Wv, l, {kv, H});
    add(HfTensor::Wo, l, {H, q});
    if (cfg.attention_bias) {
      add(HfTensor::Bq, l, {q});
      add(HfTensor::Bk, l, {kv});
      add(HfTensor::Bv, l, {kv});
    }
    if (cfg.qk_norm) {
      add(HfTensor::QNorm, l, {hd});
      add(HfTensor::KNorm, l, {hd});
    }
    add(HfTensor::Gate, l, {I, H});
    add(HfTensor::Up, l, {I, H});
    add(HfTensor::Down, l, {H, I});
  }
  return out;
}

}  // namespace fathom::io
