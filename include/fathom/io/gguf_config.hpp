#pragma once
// GGUF metadata -> ModelConfig for the architectures fathom runs: `llama` (llama.cpp writes Llama
// and Mistral models under it), `qwen2` and `qwen3`. llama.cpp's converter stores the fields of
// config.json as `{arch}.*` keys; the mapping is the one transformers' GGUF loader applies, plus
// what that loader leaves out but the file does say (key_length, sliding_window, rope scaling,
// the eot token id), so that fathom builds the model llama.cpp runs:
//
//   {arch}.block_count                        num_hidden_layers
//   {arch}.embedding_length                   hidden_size
//   {arch}.feed_forward_length                intermediate_size
//   {arch}.attention.head_count / _kv         num_attention_heads / num_key_value_heads
//   {arch}.attention.key_length               head_dim (else rope.dimension_count, else hidden/heads)
//   {arch}.attention.layer_norm_rms_epsilon   rms_norm_eps
//   {arch}.rope.freq_base                     rope_theta (default 10000)
//   {arch}.rope.scaling.*                     rope_scaling (none, linear; llama3 with its factors)
//   rope_freqs.weight                         rope_scaling Factors (llama.cpp's Llama 3.1+ form)
//   {arch}.context_length                     max_position_embeddings
//   {arch}.attention.sliding_window           sliding_window (0 / absent: full attention)
//   token_embd.weight rows                    vocab_size ({arch}.vocab_size must agree)
//   no output.weight                          tie_word_embeddings
//   blk.0.attn_q.bias / blk.0.attn_q_norm     attention_bias (qwen2) / qk_norm (qwen3)
//   tokenizer.ggml.bos/eos/eot/eom_token_id   bos_token_id, eos_token_ids (generation stops on each)
//
// Anything the forward pass cannot run exactly (partial rotary, per-layer head counts, an o_proj
// bias, YaRN) is an UnsupportedError naming the key or tensor. llama.cpp's rope_freqs.weight
// (per-frequency divisors) becomes RopeScaling::Factors.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "fathom/core/error.hpp"
#include "fathom/core/model_config.hpp"
#include "fathom/io/gguf.hpp"

namespace fathom::io {

namespace detail {

// Reads the `{arch}.` keys of one file, naming the file and the full key in every error.
class GgufKeys {
 public:
  GgufKeys(const GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}
  std::string key(const std::string& k) const { return arch_ + "." + k; }
  bool has(const std::string& k) const { return f_.has(key(k)); }

  int64_t positive(const std::string& k) const {
    const int64_t v = integer(k);
    if (v <= 0) fail(k, "must be positive, got " + std::to_string(v));
    return v;
  }
  int64_t positive_or(const std::string& k, int64_t dflt) const { return has(k) ? positive(k) : dflt; }
  double number_or(const std::string& k, double dflt) const { return has(k) ? f_.get_float(key(k)) : dflt; }
  std::string string_or(const std::string& k, const std::string& dflt) const {
    return has(k) ? f_.get_string(key(k)) : dflt;
  }
  [[noreturn]] void fail(const std::string& k, const std::string& why) const {
    throw FormatError(f_.path(), key(k), why);
  }
  [[noreturn]] void unsupported(const std::string& k, const std::string& why) const {
    throw UnsupportedError(f_.path(), key(k), why);
  }

 private:
  // An integer, or an array of equal integers (llama.cpp writes per-layer head counts as arrays
  // for some models; fathom runs only uniform ones).
  int64_t integer(const std::string& k) const {
    const GgufValue* v = f_.find(key(k));
    if (v && v->is_array()) {
      const auto a = f_.get_int_array(key(k));
      if (a.empty()) fail(k, "empty array");
      if (!std::all_of(a.begin(), a.end(), [&](int64_t x) { return x == a.front(); }))
        unsupported(k, "per-layer values that differ are not supported");
      return a.front();
    }
    return f_.get_int(key(k));
  }

  const GgufFile& f_;
  std::string arch_;
};

inline void gguf_rope_scaling(const GgufFile& f, const GgufKeys& k, ModelConfig& c) {
  std::string type = k.string_or("rope.scaling.type", "none");
  double factor = k.number_or("rope.scaling.factor", 0.0);
  if (k.has("rope.scale_linear")) {  // older files: a linear factor without a type
    type = "linear";
    factor = k.number_or("rope.scale_linear", 1.0);
  }
  if (type == "none" || (type == "linear" && factor == 1.0)) return;
  if (!(factor > 0)) k.fail("rope.scaling.factor", "must be positive for RoPE scaling '" + type + "'");
  if (type == "linear") {
    c.rope_scaling.type = RopeScaling::Type::Linear;
    c.rope_scaling.factor = factor;
  } else if (type == "llama3") {
    c.rope_scaling.type = RopeScaling::Type::Llama3;
    c.rope_scaling.factor = factor;
    c.rope_scaling.low_freq_factor = k.number_or("rope.scaling.low_freq_factor", 1.0);
    c.rope_scaling.high_freq_factor = k.number_or("rope.scaling.high_freq_factor", 4.0);
    c.rope_scaling.original_max_position_embeddings =
        k.positive_or("rope.scaling.original_context_length", c.max_position_embeddings);
    if (!(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor))
      k.fail("rope.scaling.high_freq_factor", "must be greater than low_freq_factor");
  } else {
    k.unsupported("rope.scaling.type", "RoPE scaling '" + type + "' is not supported (none, linear, llama3 are)");
  }
  (void)f;
}

// llama.cpp's rope_freqs.weight: head_dim / 2 f32 divisors of the rotary frequencies (its form of
// Llama 3.1 / 3.2's llama3 scaling, which the file's metadata then leaves out).
inline void gguf_rope_freqs(const GgufFile& f, const GgufTensor& t, ModelConfig& c) {
  const auto bad = [&](const std::string& why) { throw FormatError(f.path(), t.name, why); };
  if (c.rope_scaling.type != RopeScaling::Type::None)
    throw UnsupportedError(f.path(), t.name, "per-frequency RoPE factors together with rope.scaling.type");
  if (t.type != GgmlType::F32 || t.ne.size() != 1) bad("expected a 1-D F32 tensor");
  if (t.ne[0] != c.head_dim / 2)
    bad(std::to_string(t.ne[0]) + " factors for a head dimension of " + std::to_string(c.head_dim) +
        " (expected " + std::to_string(c.head_dim / 2) + ")");
  c.rope_scaling.type = RopeScaling::Type::Factors;
  c.rope_scaling.freq_factors.resize(size_t(t.ne[0]));
  for (size_t i = 0; i < c.rope_scaling.freq_factors.size(); ++i) {
    float v;
    std::memcpy(&v, t.data + 4 * i, 4);
    if (!(std::isfinite(v) && v > 0)) bad("factor " + std::to_string(i) + " is " + std::to_string(v) + ", not positive");
    c.rope_scaling.freq_factors[i] = v;
  }
}

}  // namespace detail

// The ModelConfig of a GGUF file (see the table above).
inline ModelConfig gguf_config(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  ModelConfig c;
  if (arch == "llama") c.family = Family::Llama, c.architecture = "LlamaForCausalLM";
  else if (arch == "qwen2") c.family = Family::Qwen2, c.architecture = "Qwen2ForCausalLM";
  else if (arch == "qwen3") c.family = Family::Qwen3, c.architecture = "Qwen3ForCausalLM";
  else
    throw UnsupportedError(f.path(), "general.architecture",
                           "'" + arch + "' is not supported (llama, qwen2, qwen3 are)");
  const detail::GgufKeys k(f, arch);

  c.num_hidden_layers = k.positive("block_count");
  c.hidden_size = k.positive("embedding_length");
  c.intermediate_size = k.positive("feed_forward_length");
  c.num_attention_heads = k.positive("attention.head_count");
  c.num_key_value_heads = k.positive_or("attention.head_count_kv", c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    k.fail("attention.head_count_kv", "attention.head_count " + std::to_string(c.num_attention_heads) +
                                          " is not a multiple of " + std::to_string(c.num_key_value_heads));

  if (k.has("attention.key_length")) {
    c.head_dim = k.positive("attention.key_length");
    if (k.positive_or("attention.value_length", c.head_dim) != c.head_dim)
      k.unsupported("attention.value_length", "differs from attention.key_length");
  } else if (k.has("rope.dimension_count")) {
    c.head_dim = k.positive("rope.dimension_count");
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      k.fail("attention.head_count", "does not divide embedding_length, and attention.key_length is absent");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) k.fail("attention.key_length", "head dimension " + std::to_string(c.head_dim) + " is odd");
  if (k.has("rope.dimension_count") && k.positive("rope.dimension_count") != c.head_dim)
    k.unsupported("rope.dimension_count", "partial rotary embeddings (" + std::to_string(k.positive("rope.dimension_count")) +
                                              " of " + std::to_string(c.head_dim) + " dimensions) are not supported");

  c.rms_norm_eps = k.number_or("attention.layer_norm_rms_epsilon", 1e-6);
  if (!(c.rms_norm_eps >= 0)) k.fail("attention.layer_norm_rms_epsilon", "must be non-negative");
  c.rope_theta = k.number_or("rope.freq_base", 10000.0);
  if (!(c.rope_theta > 0)) k.fail("rope.freq_base", "must be positive");
  c.max_position_embeddings = k.positive_or("context_length", c.family == Family::Llama ? 2048 : 32768);
  detail::gguf_rope_scaling(f, k, c);
  if (const GgufTensor* t = f.tensor("rope_freqs.weight")) detail::gguf_rope_freqs(f, *t, c);

  c.sliding_window = k.has("attention.sliding_window") ? k.positive("attention.sliding_window") : 0;
  // ModelConfig's Llama has no window; a windowed `llama` file is a Mistral model.
  if (c.family == Family::Llama && c.sliding_window > 0) c.family = Family::Mistral, c.architecture = "MistralForCausalLM";

  const GgufTensor* embd = f.tensor("token_embd.weight");
  if (!embd) throw FormatError(f.path(), "token_embd.weight", "missing tensor");
  if (embd->ne.size() != 2) throw FormatError(f.path(), "token_embd.weight", "expected 2 dimensions");
  c.vocab_size = embd->ne[1];
  if (k.has("vocab_size") && k.positive("vocab_size") != c.vocab_size)
    k.fail("vocab_size", std::to_string(k.positive("vocab_size")) + ", but token_embd.weight has " +
                             std::to_string(c.vocab_size) + " rows");
  c.tie_word_embeddings = f.tensor("output.weight") == nullptr;

  c.attention_bias = f.tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = f.tensor("blk.0.attn_q_norm.weight") != nullptr;
  if (f.tensor("blk.0.attn_output.bias"))
    throw UnsupportedError(f.path(), "blk.0.attn_output.bias", "an attention output bias is not supported");

  auto token_id = [&](const char* key) -> int64_t {
    if (!f.has(key)) return -1;
    const int64_t id = f.get_int(key);
    if (id < 0 || id >= c.vocab_size)
      throw FormatError(f.path(), key, "token id " + std::to_string(id) + " outside the vocabulary [0, " +
                                           std::to_string(c.vocab_size) + ")");
    return id;
  };
  c.bos_token_id = token_id("tokenizer.ggml.bos_token_id");
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (const int64_t id = token_id(key);
        id >= 0 && std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end())
      c.eos_token_ids.push_back(id);
  c.torch_dtype = DType::F32;  // what the weights are computed in; the tensors say how they are held
  return c;
}

}  // namespace fathom::io
