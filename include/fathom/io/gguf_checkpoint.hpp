#pragma once
// A GGUF file (llama.cpp's model format) as a Checkpoint: its ModelConfig from the metadata
// (io/gguf_config.hpp) and its tensors under the Hugging Face names the Model reads, converted to
// the requested in-memory form (io/gguf_weights.hpp), llama files' Q/K rows un-permuted. The
// mapping (names on the right as io/tensor_names.hpp spells them):
//
//   token_embd.weight          model.embed_tokens.weight
//   output_norm.weight         model.norm.weight
//   output.weight              lm_head.weight (absent: tied to the embedding)
//   blk.N.attn_norm.weight     model.layers.N.input_layernorm.weight
//   blk.N.ffn_norm.weight      model.layers.N.post_attention_layernorm.weight
//   blk.N.attn_{q,k,v}.*       model.layers.N.self_attn.{q,k,v}_proj.*   (weight, bias)
//   blk.N.attn_output.weight   model.layers.N.self_attn.o_proj.weight
//   blk.N.attn_{q,k}_norm.*    model.layers.N.self_attn.{q,k}_norm.weight
//   blk.N.ffn_{gate,up,down}.* model.layers.N.mlp.{gate,up,down}_proj.weight
//
//   rope_freqs.weight          (config: rope_scaling's per-frequency factors, gguf_config.hpp)
//
// A tensor outside this table is an UnsupportedError naming it: a part of the model fathom would
// silently leave out.
#include <algorithm>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/weight_format.hpp"
#include "fathom/io/checkpoint_data.hpp"
#include "fathom/io/gguf.hpp"
#include "fathom/io/gguf_config.hpp"
#include "fathom/io/gguf_weights.hpp"
#include "fathom/io/tensor_names.hpp"

namespace fathom::io {

namespace detail {

// Which Hugging Face tensor (io/tensor_names.hpp) GGUF tensor `n` is, with its layer (-1 for
// once-per-model tensors), or nullopt. A block index must be < n_layers.
struct GgufHfTensor {
  HfTensor kind;
  int64_t layer;
};
inline std::optional<GgufHfTensor> gguf_hf_tensor(std::string_view n, int64_t n_layers) {
  if (n == "token_embd.weight") return GgufHfTensor{HfTensor::Embed, -1};
  if (n == "output_norm.weight") return GgufHfTensor{HfTensor::FinalNorm, -1};
  if (n == "output.weight") return GgufHfTensor{HfTensor::LmHead, -1};
  if (!n.starts_with("blk.")) return std::nullopt;
  n.remove_prefix(4);
  const size_t dot = n.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot > 6) return std::nullopt;
  int64_t layer = 0;
  for (char ch : n.substr(0, dot)) {
    if (ch < '0' || ch > '9') return std::nullopt;
    layer = layer * 10 + (ch - '0');
  }
  if (layer >= n_layers) return std::nullopt;
  const std::string_view rest = n.substr(dot + 1);
  static constexpr std::pair<std::string_view, HfTensor> kSuffixes[] = {
      {"attn_norm.weight", HfTensor::AttnNorm},
      {"ffn_norm.weight", HfTensor::MlpNorm},
      {"attn_q.weight", HfTensor::Wq},
      {"attn_k.weight", HfTensor::Wk},
      {"attn_v.weight", HfTensor::Wv},
      {"attn_q.bias", HfTensor::Bq},
      {"attn_k.bias", HfTensor::Bk},
      {"attn_v.bias", HfTensor::Bv},
      {"attn_output.weight", HfTensor::Wo},
      {"attn_q_norm.weight", HfTensor::QNorm},
      {"attn_k_norm.weight", HfTensor::KNorm},
      {"ffn_gate.weight", HfTensor::Gate},
      {"ffn_up.weight", HfTensor::Up},
      {"ffn_down.weight", HfTensor::Down},
  };
  for (auto [g, kind] : kSuffixes)
    if (rest == g) return GgufHfTensor{kind, layer};
  return std::nullopt;
}

// A tensor's place in a forward pass: the embedding, then layer by layer q, k, v, o, gate, up,
// down (norms and biases beside their matrices), then the final norm and the LM head.
inline std::pair<int64_t, int> forward_order(const GgufHfTensor& t, int64_t n_layers) {
  switch (t.kind) {
    case HfTensor::Embed: return {-1, 0};
    case HfTensor::FinalNorm: return {n_layers, 0};
    case HfTensor::LmHead: return {n_layers, 1};
    default: break;
  }
  static constexpr HfTensor kLayer[] = {HfTensor::AttnNorm, HfTensor::Wq, HfTensor::Bq, HfTensor::QNorm,
                                        HfTensor::Wk, HfTensor::Bk, HfTensor::KNorm, HfTensor::Wv,
                                        HfTensor::Bv, HfTensor::Wo, HfTensor::MlpNorm, HfTensor::Gate,
                                        HfTensor::Up, HfTensor::Down};
  return {t.layer, int(std::find(std::begin(kLayer), std::end(kLayer), t.kind) - std::begin(kLayer))};
}

}  // namespace detail

// Loads a .gguf file; quantised matrices are converted to the form `want` asks for (the table
// in io/gguf_weights.hpp). Views into the file keep it mapped as long as the store lives.
inline Checkpoint load_gguf(const std::filesystem::path& path, WeightFormat want = WeightFormat::AsStored) {
  const GgufFile f = GgufFile::open(path);
  Checkpoint ck;
  ck.path = path;
  ck.config = gguf_config(f);
  const ModelConfig& c = ck.config;
  TensorStore& store = ck.weights;
  store.set_origin(path.string());
  const bool llama_file = f.get_string("general.architecture") == "llama";
  const size_t hd = size_t(c.head_dim);

  // Tensors are converted (and re-laid) in the order a forward pass reads them, not the file's:
  // files list a layer's tensors by name (ffn_down, ffn_gate, ffn_up, ..., attn_k, attn_output,
  // attn_q, attn_v), and the weights made at load lie one after another on huge pages
  // (kernels/weight_buffer.hpp), where each product's stream then runs on into the next product's
  // matrix instead of into an unrelated one (docs/benchmarks.md, "Zen 4: GGUF weights in forward order").
  std::vector<std::pair<const GgufTensor*, detail::GgufHfTensor>> order;
  for (const GgufTensor& t : f.tensors()) {
    if (t.name == "rope_freqs.weight") continue;  // in the config (gguf_config.hpp: RopeScaling::Factors)
    const auto hf = detail::gguf_hf_tensor(t.name, c.num_hidden_layers);
    if (!hf) throw UnsupportedError(f.path(), t.name, "tensor not part of a llama / qwen2 / qwen3 model as fathom runs it");
    order.emplace_back(&t, *hf);
  }
  std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    return detail::forward_order(a.second, c.num_hidden_layers) < detail::forward_order(b.second, c.num_hidden_layers);
  });
  bool viewed = false;
  for (const auto& [tp, hf] : order) {
    const GgufTensor& t = *tp;
    std::vector<int64_t> shape = t.shape();
    if (shape.size() != 1 && shape.size() != 2)
      throw FormatError(f.path(), t.name, "expected 1 or 2 dimensions, got " + std::to_string(shape.size()));
    detail::RowMap src = [](size_t r) { return r; };
    const bool q = hf.kind == HfTensor::Wq || hf.kind == HfTensor::Bq;
    if (llama_file && (q || hf.kind == HfTensor::Wk || hf.kind == HfTensor::Bk)) {
      const int64_t heads = q ? c.num_attention_heads : c.num_key_value_heads;
      if (shape[0] != heads * c.head_dim)  // the permutation needs whole heads
        throw FormatError(f.path(), t.name, std::to_string(shape[0]) + " rows, expected " +
                                                std::to_string(heads) + " heads x " + std::to_string(c.head_dim));
      src = [hd](size_t r) { return llama_qk_file_row(r, hd); };
    }
    const GgufHeld held = gguf_held_as(t.type, want, shape.size() == 2);
    const std::string name = hf_name(hf.kind, hf.layer);
    viewed = add_gguf_tensor(store, f, t, name, std::move(shape), held, src) || viewed;
  }
  if (viewed) store.keep_alive(f.keep_alive());
  return ck;
}

}  // namespace fathom::io
