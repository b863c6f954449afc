#pragma once
// config.json (+ generation_config.json) -> ModelConfig, following transformers' configuration
// classes (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config) default by default: a field that
// is absent takes that class's default, so the model we build is the model transformers builds.
// Anything fathom cannot run exactly is an UnsupportedError, never a silent approximation.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/io/json.hpp"
#include "fathom/core/model_config.hpp"

namespace fathom::io {

namespace detail {

inline std::optional<Family> family_of_architecture(std::string_view a) {
  if (a == "LlamaForCausalLM") return Family::Llama;
  if (a == "MistralForCausalLM") return Family::Mistral;
  if (a == "Qwen2ForCausalLM") return Family::Qwen2;
  if (a == "Qwen3ForCausalLM") return Family::Qwen3;
  return std::nullopt;
}

inline std::optional<std::string> architecture_of_model_type(std::string_view t) {
  if (t == "llama") return "LlamaForCausalLM";
  if (t == "mistral") return "MistralForCausalLM";
  if (t == "qwen2") return "Qwen2ForCausalLM";
  if (t == "qwen3") return "Qwen3ForCausalLM";
  return std::nullopt;
}

// eos_token_id: an integer, a list of integers, or null.
inline std::vector<int64_t> read_token_ids(const JsonObjectReader& r, std::string_view key) {
  std::vector<int64_t> ids;
  const Json* v = r.find(key);
  if (!v) return ids;
  if (v->is_array()) {
    for (size_t i = 0; i < v->size(); ++i)
      ids.push_back(r.to_int(std::string(key) + "[" + std::to_string(i) + "]", (*v)[i]));
  } else if (v->is_number_integer()) {
    ids.push_back(r.to_int(key, *v));
  } else {
    r.fail(key, "expected integer or list of integers, got " + json_kind(*v));
  }
  for (auto id : ids)
    if (id < 0) r.fail(key, "negative token id " + std::to_string(id));
  return ids;
}

inline int64_t positive(const JsonObjectReader& r, std::string_view key, int64_t v) {
  if (v <= 0) r.fail(key, "must be positive, got " + std::to_string(v));
  return v;
}

// rope_scaling (transformers 4.x) or rope_parameters (5.x); rope_scaling wins when both are set,
// as in transformers' convert_rope_params_to_dict.
inline void read_rope(const JsonObjectReader& r, ModelConfig& c) {
  c.rope_theta = r.number_or("rope_theta", 10000.0);
  std::string key = "rope_scaling";
  const Json* d = r.find(key);
  if (d && d->is_object() && d->empty()) d = nullptr;
  if (!d) {
    key = "rope_parameters";
    d = r.find(key);
  }
  std::optional<double> partial;
  if (r.find("partial_rotary_factor")) partial = r.number("partial_rotary_factor");
  if (d) {
    JsonObjectReader s(*d, r.file(), key + ".");
    for (const char* nested : {"full_attention", "sliding_attention"})
      if (s.contains(nested))
        throw UnsupportedError(r.file(), key, "per-layer-type RoPE parameters are not supported");
    std::string type = "default";
    if (auto t = s.opt_string("rope_type")) type = *t;
    else if (auto t2 = s.opt_string("type")) type = *t2;
    c.rope_theta = s.number_or("rope_theta", c.rope_theta);
    if (s.find("partial_rotary_factor")) partial = s.number("partial_rotary_factor");
    if (type == "default") {
      c.rope_scaling = {};
    } else if (type == "linear") {
      c.rope_scaling.type = RopeScaling::Type::Linear;
      c.rope_scaling.factor = s.number("factor");
    } else if (type == "llama3") {
      c.rope_scaling.type = RopeScaling::Type::Llama3;
      c.rope_scaling.factor = s.number("factor");
      c.rope_scaling.low_freq_factor = s.number("low_freq_factor");
      c.rope_scaling.high_freq_factor = s.number("high_freq_factor");
      // transformers: a top-level original_max_position_embeddings wins, then the dict's, then
      // max_position_embeddings.
      if (auto top = r.opt_integer("original_max_position_embeddings"))
        c.rope_scaling.original_max_position_embeddings = *top;
      else
        c.rope_scaling.original_max_position_embeddings =
            s.integer_or("original_max_position_embeddings", c.max_position_embeddings);
      positive(s, "original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings);
      if (!(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor))
        s.fail("high_freq_factor", "must be greater than low_freq_factor (the llama3 ramp divides by their difference)");
    } else if (type == "fathom_freq_factors") {  // a GGUF file's rope_freqs.weight, saved by fathom
      c.rope_scaling.type = RopeScaling::Type::Factors;
      const Json& f = s.require("factors");
      if (!f.is_array() || f.empty()) s.fail("factors", "must be a non-empty array of numbers");
      c.rope_scaling.freq_factors.clear();
      for (const Json& v : f) {
        const double x = s.to_number("factors", v);
        if (!(std::isfinite(x) && x > 0)) s.fail("factors", "every factor must be positive");
        c.rope_scaling.freq_factors.push_back(x);
      }
    } else {
      throw UnsupportedError(r.file(), key + ".rope_type",
                             "RoPE type '" + type + "' is not supported (default, linear, llama3 are)");
    }
    if (c.rope_scaling.type != RopeScaling::Type::None && !(c.rope_scaling.factor > 0))
      s.fail("factor", "must be positive");
  }
  if (partial && *partial != 1.0)
    throw UnsupportedError(r.file(), "partial_rotary_factor", "partial rotary embeddings are not supported");
  if (!(c.rope_theta > 0)) r.fail("rope_theta", "must be positive");
}

// Qwen2/Qwen3: the window applies only with use_sliding_window, and then only to layers
// i >= max_window_layers (or to the layers layer_types marks "sliding_attention"). ModelConfig has
// one window for all layers, so a mix of windowed and full layers is unsupported.
inline int64_t qwen_sliding_window(const JsonObjectReader& r, int64_t n_layers) {
  if (!r.boolean_or("use_sliding_window", false)) return 0;
  if (r.is_null("sliding_window")) return 0;
  const int64_t window = positive(r, "sliding_window", r.integer_or("sliding_window", 4096));
  int64_t sliding = 0;
  if (const Json* lt = r.find("layer_types")) {
    if (!lt->is_array()) r.fail("layer_types", "expected a list of strings, got " + json_kind(*lt));
    if (int64_t(lt->size()) != n_layers)
      r.fail("layer_types", std::to_string(lt->size()) + " entries for " + std::to_string(n_layers) + " layers");
    for (auto& t : *lt) {
      if (!t.is_string()) r.fail("layer_types", "expected strings, got " + json_kind(t));
      if (t == "sliding_attention") ++sliding;
      else if (t != "full_attention") r.fail("layer_types", "unknown layer type " + t.dump());
    }
  } else {
    const int64_t first = std::max<int64_t>(0, r.integer_or("max_window_layers", 28));
    sliding = std::max<int64_t>(0, n_layers - first);
  }
  if (sliding == 0) return 0;
  if (sliding != n_layers)
    throw UnsupportedError(r.file(), "max_window_layers",
                           "a sliding window on " + std::to_string(sliding) + " of " + std::to_string(n_layers) +
                               " layers is not supported (all or none)");
  return window;
}

}  // namespace detail

// Parses config.json text; `label` names the file in errors.
inline ModelConfig parse_config(std::string_view json_text, const std::string& label) {
  using detail::positive;
  Json j = parse_json(json_text, label);
  JsonObjectReader r(j, label);
  ModelConfig c;

  if (const Json* a = r.find("architectures")) {
    if (!a->is_array() || a->empty() || !(*a)[0].is_string())
      r.fail("architectures", "expected a non-empty list of strings, got " + detail::json_kind(*a));
    c.architecture = (*a)[0].get<std::string>();
  } else if (auto mt = r.opt_string("model_type")) {
    auto arch = detail::architecture_of_model_type(*mt);
    if (!arch)
      throw UnsupportedError(label, "model_type", "'" + *mt + "' is not supported (llama, mistral, qwen2, qwen3 are)");
    c.architecture = *arch;
  } else {
    r.fail("architectures", "missing (and no model_type)");
  }
  auto fam = detail::family_of_architecture(c.architecture);
  if (!fam)
    throw UnsupportedError(label, "architectures",
                           c.architecture + " is not supported (LlamaForCausalLM, MistralForCausalLM, "
                                            "Qwen2ForCausalLM, Qwen3ForCausalLM are)");
  c.family = *fam;
  const bool qwen = c.family == Family::Qwen2 || c.family == Family::Qwen3;

  if (auto act = r.opt_string("hidden_act"); act && *act != "silu")
    throw UnsupportedError(label, "hidden_act", "'" + *act + "' is not supported (silu is)");

  c.hidden_size = positive(r, "hidden_size", r.integer("hidden_size"));
  c.num_hidden_layers = positive(r, "num_hidden_layers", r.integer("num_hidden_layers"));
  c.num_attention_heads = positive(r, "num_attention_heads", r.integer("num_attention_heads"));
  c.intermediate_size = positive(r, "intermediate_size", r.integer("intermediate_size"));
  c.vocab_size = positive(r, "vocab_size", r.integer("vocab_size"));

  // Absent -> the class default (Mistral 8, Qwen 32, Llama = heads); null -> heads.
  if (r.contains("num_key_value_heads") && !r.is_null("num_key_value_heads"))
    c.num_key_value_heads = r.integer("num_key_value_heads");
  else if (!r.contains("num_key_value_heads") && c.family == Family::Mistral)
    c.num_key_value_heads = 8;
  else if (!r.contains("num_key_value_heads") && qwen)
    c.num_key_value_heads = 32;
  else
    c.num_key_value_heads = c.num_attention_heads;
  positive(r, "num_key_value_heads", c.num_key_value_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.fail("num_key_value_heads", "num_attention_heads " + std::to_string(c.num_attention_heads) +
                                      " is not a multiple of num_key_value_heads " +
                                      std::to_string(c.num_key_value_heads));

  if (auto hd = r.opt_integer("head_dim")) {
    c.head_dim = positive(r, "head_dim", *hd);
  } else if (c.family == Family::Qwen3 && !r.contains("head_dim")) {
    c.head_dim = 128;  // Qwen3Config's default, not hidden_size / heads
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      r.fail("head_dim", "absent, and hidden_size " + std::to_string(c.hidden_size) +
                             " is not a multiple of num_attention_heads " + std::to_string(c.num_attention_heads));
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0)
    r.fail("head_dim", "is odd (" + std::to_string(c.head_dim) + "); RoPE rotates pairs of dimensions");

  c.rms_norm_eps = r.number_or("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps >= 0)) r.fail("rms_norm_eps", "must be non-negative");
  const int64_t default_max_pos = c.family == Family::Llama ? 2048 : c.family == Family::Mistral ? 131072 : 32768;
  c.max_position_embeddings = positive(r, "max_position_embeddings",
                                       r.integer_or("max_position_embeddings", default_max_pos));
  detail::read_rope(r, c);
  c.tie_word_embeddings = r.boolean_or("tie_word_embeddings", false);

  switch (c.family) {
    case Family::Mistral:
      // MistralConfig: default 4096, null = full attention.
      c.sliding_window = r.is_null("sliding_window")
                             ? 0
                             : positive(r, "sliding_window", r.integer_or("sliding_window", 4096));
      break;
    case Family::Qwen2:
    case Family::Qwen3:
      c.sliding_window = detail::qwen_sliding_window(r, c.num_hidden_layers);
      break;
    case Family::Llama:
      c.sliding_window = 0;
      break;
  }

  // Qwen2 hard-codes q/k/v bias; Mistral hard-codes none (its config has no such field).
  // Llama and Qwen3 read attention_bias, but there it also gives o_proj a bias, which
  // ModelConfig does not describe.
  if (c.family == Family::Qwen2) {
    c.attention_bias = true;
  } else if (c.family != Family::Mistral && r.boolean_or("attention_bias", false)) {
    throw UnsupportedError(label, "attention_bias",
                           "true is not supported for " + c.architecture + " (it adds an o_proj bias)");
  }
  if (c.family == Family::Llama && r.boolean_or("mlp_bias", false))
    throw UnsupportedError(label, "mlp_bias", "MLP biases are not supported");
  c.qk_norm = c.family == Family::Qwen3;

  const bool llama_like = c.family == Family::Llama || c.family == Family::Mistral;
  if (r.is_null("bos_token_id")) c.bos_token_id = -1;
  else if (r.contains("bos_token_id")) c.bos_token_id = r.integer("bos_token_id");
  else c.bos_token_id = llama_like ? 1 : -1;
  if (c.bos_token_id < -1) r.fail("bos_token_id", "negative token id");
  if (r.contains("eos_token_id")) c.eos_token_ids = detail::read_token_ids(r, "eos_token_id");
  else if (llama_like) c.eos_token_ids = {2};

  std::optional<std::string> dtype = r.opt_string("dtype");
  if (!dtype) dtype = r.opt_string("torch_dtype");
  if (!dtype || *dtype == "float32" || *dtype == "auto") c.torch_dtype = DType::F32;
  else if (*dtype == "bfloat16") c.torch_dtype = DType::BF16;
  else if (*dtype == "float16") c.torch_dtype = DType::F16;
  else throw UnsupportedError(label, r.contains("dtype") ? "dtype" : "torch_dtype",
                              "'" + *dtype + "' is not supported (float32, bfloat16, float16 are)");
  return c;
}

// The config.json of `c` that parse_config reads back as `c` (and transformers as the same model:
// fields named as in its configuration classes; a llama2.c model is written as Llama).
inline nlohmann::ordered_json config_to_json(const ModelConfig& c) {
  nlohmann::ordered_json j;
  const char* arch = c.family == Family::Llama     ? "LlamaForCausalLM"
                     : c.family == Family::Mistral ? "MistralForCausalLM"
                     : c.family == Family::Qwen2   ? "Qwen2ForCausalLM"
                                                   : "Qwen3ForCausalLM";
  j["architectures"] = {arch};
  j["model_type"] = family_name(c.family);
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  switch (c.rope_scaling.type) {
    case RopeScaling::Type::None: j["rope_scaling"] = nullptr; break;
    case RopeScaling::Type::Linear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
      break;
    case RopeScaling::Type::Llama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope_scaling.factor},
                           {"low_freq_factor", c.rope_scaling.low_freq_factor},
                           {"high_freq_factor", c.rope_scaling.high_freq_factor},
                           {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
      break;
    case RopeScaling::Type::Factors:  // no transformers form: fathom's own type, read back below
      j["rope_scaling"] = {{"rope_type", "fathom_freq_factors"}, {"factors", c.rope_scaling.freq_factors}};
      break;
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.family == Family::Mistral) {
    j["sliding_window"] = c.sliding_window > 0 ? nlohmann::ordered_json(c.sliding_window) : nullptr;
  } else if (c.family != Family::Llama) {  // Qwen: the window on every layer, or on none
    j["use_sliding_window"] = c.sliding_window > 0;
    j["sliding_window"] = c.sliding_window > 0 ? nlohmann::ordered_json(c.sliding_window) : nullptr;
    j["max_window_layers"] = 0;
  }
  if (c.family == Family::Llama || c.family == Family::Qwen3) j["attention_bias"] = false;
  j["bos_token_id"] = c.bos_token_id >= 0 ? nlohmann::ordered_json(c.bos_token_id) : nullptr;
  j["eos_token_id"] = c.eos_token_ids;
  j["torch_dtype"] = c.torch_dtype == DType::BF16 ? "bfloat16" : c.torch_dtype == DType::F16 ? "float16" : "float32";
  return j;
}

// generation_config.json: its bos/eos ids are the ones generate() stops on, so they override
// config.json's when present.
inline void apply_generation_config(ModelConfig& c, std::string_view json_text, const std::string& label) {
  Json j = parse_json(json_text, label);
  JsonObjectReader r(j, label);
  if (r.find("eos_token_id")) c.eos_token_ids = detail::read_token_ids(r, "eos_token_id");
  if (auto bos = r.opt_integer("bos_token_id")) {
    if (*bos < 0) r.fail("bos_token_id", "negative token id");
    c.bos_token_id = *bos;
  }
}

// `path` is config.json or the model folder holding it; a generation_config.json beside it is
// read too.
inline ModelConfig load_config(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const fs::path file = fs::is_directory(path) ? path / "config.json" : path;
  if (!fs::exists(file)) throw IoError(file.string(), "", "config.json not found");
  ModelConfig c = parse_config(read_text_file(file), file.string());
  const fs::path gen = file.parent_path() / "generation_config.json";
  if (fs::exists(gen)) apply_generation_config(c, read_text_file(gen), gen.string());
  return c;
}

}  // namespace fathom::io
