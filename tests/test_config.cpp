// config.json -> ModelConfig: transformers' per-family defaults, RoPE scaling, sliding windows,
// generation_config.json, HF checkpoint folders, and one test per malformed config; the table of
// Hugging Face tensor names against transformers' own checkpoints; read_text_file.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "fathom/core/text_file.hpp"
#include "fathom/io/checkpoint.hpp"
#include "fathom/io/config.hpp"
#include "fathom/io/tensor_names.hpp"
#include "io_test_util.hpp"

using namespace fathom;
using namespace fathom::io;
using fathom::test::contains;
using fathom::test::expect_error;
using fathom::test::TempDir;
using fathom::test::write_file;

namespace {

// A minimal config of the given architecture; `extra` is spliced in (",\"key\": value...").
std::string cfg(const std::string& arch, const std::string& extra = "") {
  return R"({"architectures":[")" + arch +
         R"("],"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":96,"vocab_size":100)" +
         extra + "}";
}

ModelConfig parse(const std::string& text) { return parse_config(text, "config.json"); }

template <class E>
E parse_error(const std::string& text) {
  return expect_error<E>([&] { parse(text); });
}

}  // namespace

TEST_CASE("config: Llama defaults follow LlamaConfig") {
  auto c = parse(cfg("LlamaForCausalLM"));
  CHECK(c.family == Family::Llama);
  CHECK(c.architecture == "LlamaForCausalLM");
  CHECK(c.num_key_value_heads == 4);  // = heads
  CHECK(c.head_dim == 16);
  CHECK(c.rms_norm_eps == 1e-6);
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.rope_scaling.type == RopeScaling::Type::None);
  CHECK(c.max_position_embeddings == 2048);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK(c.sliding_window == 0);
  CHECK_FALSE(c.attention_bias);
  CHECK_FALSE(c.qk_norm);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_ids == std::vector<int64_t>{2});
  CHECK(c.torch_dtype == DType::F32);
}

TEST_CASE("config: Mistral defaults (kv heads 8, window 4096) and null window") {
  auto c = parse(cfg("MistralForCausalLM", R"(,"num_attention_heads":8)"));
  CHECK(c.family == Family::Mistral);
  CHECK(c.num_key_value_heads == 8);
  CHECK(c.sliding_window == 4096);
  CHECK(c.max_position_embeddings == 131072);
  CHECK(c.head_dim == 8);
  auto n = parse(cfg("MistralForCausalLM", R"(,"sliding_window":null,"num_key_value_heads":null)"));
  CHECK(n.sliding_window == 0);
  CHECK(n.num_key_value_heads == 4);
  CHECK(parse(cfg("MistralForCausalLM", R"(,"sliding_window":7,"num_key_value_heads":2)")).sliding_window == 7);
}

TEST_CASE("config: Qwen2 has q/k/v bias, no bos/eos defaults, window only with use_sliding_window") {
  auto c = parse(cfg("Qwen2ForCausalLM", R"(,"num_key_value_heads":2,"sliding_window":32,"max_window_layers":2)"));
  CHECK(c.family == Family::Qwen2);
  CHECK(c.attention_bias);
  CHECK_FALSE(c.qk_norm);
  CHECK(c.sliding_window == 0);
  CHECK(c.bos_token_id == -1);
  CHECK(c.eos_token_ids.empty());
  CHECK(c.max_position_embeddings == 32768);
  // Layers i >= max_window_layers use the window: 0 -> all of them, >= layers -> none.
  auto all = parse(cfg("Qwen2ForCausalLM", R"(,"num_key_value_heads":2,"use_sliding_window":true,"sliding_window":32,"max_window_layers":0)"));
  CHECK(all.sliding_window == 32);
  auto none = parse(cfg("Qwen2ForCausalLM", R"(,"num_key_value_heads":2,"use_sliding_window":true,"sliding_window":32,"max_window_layers":2)"));
  CHECK(none.sliding_window == 0);
  auto lt = parse(cfg("Qwen2ForCausalLM", R"(,"num_key_value_heads":2,"use_sliding_window":true,"sliding_window":32,"layer_types":["sliding_attention","sliding_attention"])"));
  CHECK(lt.sliding_window == 32);
  auto e = parse_error<UnsupportedError>(cfg("Qwen2ForCausalLM", R"(,"num_key_value_heads":2,"use_sliding_window":true,"max_window_layers":1)"));
  CHECK(e.field() == "max_window_layers");
  // Qwen2Config's num_key_value_heads default is 32, not the head count.
  auto kv = parse_error<ConfigError>(cfg("Qwen2ForCausalLM"));
  CHECK(kv.field() == "num_key_value_heads");
}

TEST_CASE("config: Qwen3 has q/k norm and head_dim default 128") {
  auto c = parse(cfg("Qwen3ForCausalLM", R"(,"num_key_value_heads":2)"));
  CHECK(c.family == Family::Qwen3);
  CHECK(c.qk_norm);
  CHECK_FALSE(c.attention_bias);
  CHECK(c.head_dim == 128);
  CHECK(parse(cfg("Qwen3ForCausalLM", R"(,"num_key_value_heads":2,"head_dim":24)")).head_dim == 24);
  auto b = parse_error<UnsupportedError>(cfg("Qwen3ForCausalLM", R"(,"num_key_value_heads":2,"attention_bias":true)"));
  CHECK(b.field() == "attention_bias");
}

TEST_CASE("config: explicit fields, model_type fallback, eos list, dtype") {
  auto c = parse(R"({"model_type":"llama","hidden_size":64,"num_hidden_layers":3,"num_attention_heads":4,
    "num_key_value_heads":2,"head_dim":32,"intermediate_size":96,"vocab_size":100,"rms_norm_eps":1e-5,
    "rope_theta":500000.0,"max_position_embeddings":4096,"tie_word_embeddings":true,"bos_token_id":128000,
    "eos_token_id":[128001,128009],"torch_dtype":"bfloat16","attention_bias":false,"mlp_bias":false,"hidden_act":"silu"})");
  CHECK(c.architecture == "LlamaForCausalLM");
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.head_dim == 32);
  CHECK(c.rms_norm_eps == 1e-5);
  CHECK(c.rope_theta == 500000.0);
  CHECK(c.max_position_embeddings == 4096);
  CHECK(c.tie_word_embeddings);
  CHECK(c.bos_token_id == 128000);
  CHECK(c.eos_token_ids == std::vector<int64_t>{128001, 128009});
  CHECK(c.torch_dtype == DType::BF16);
  CHECK(parse(cfg("LlamaForCausalLM", R"(,"dtype":"float16","eos_token_id":null,"bos_token_id":null)")).torch_dtype == DType::F16);
  auto n = parse(cfg("LlamaForCausalLM", R"(,"eos_token_id":null,"bos_token_id":null)"));
  CHECK(n.eos_token_ids.empty());
  CHECK(n.bos_token_id == -1);
}

TEST_CASE("config: rope_scaling llama3 and linear, and transformers 5 rope_parameters") {
  auto c = parse(cfg("LlamaForCausalLM", R"(,"max_position_embeddings":131072,"rope_theta":500000.0,
    "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192})"));
  CHECK(c.rope_scaling.type == RopeScaling::Type::Llama3);
  CHECK(c.rope_scaling.factor == 8.0);
  CHECK(c.rope_scaling.low_freq_factor == 1.0);
  CHECK(c.rope_scaling.high_freq_factor == 4.0);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(c.rope_theta == 500000.0);
  // Without original_max_position_embeddings transformers uses max_position_embeddings.
  auto d = parse(cfg("LlamaForCausalLM", R"(,"max_position_embeddings":300,
    "rope_scaling":{"rope_type":"llama3","factor":2,"low_freq_factor":1,"high_freq_factor":2})"));
  CHECK(d.rope_scaling.original_max_position_embeddings == 300);
  auto l = parse(cfg("LlamaForCausalLM", R"(,"rope_scaling":{"type":"linear","factor":2.0})"));
  CHECK(l.rope_scaling.type == RopeScaling::Type::Linear);
  CHECK(l.rope_scaling.factor == 2.0);
  auto p = parse(cfg("Qwen3ForCausalLM", R"(,"num_key_value_heads":2,"rope_parameters":{"rope_type":"default","rope_theta":1000000.0})"));
  CHECK(p.rope_theta == 1000000.0);
  CHECK(p.rope_scaling.type == RopeScaling::Type::None);
  CHECK(parse(cfg("LlamaForCausalLM", R"(,"rope_scaling":null)")).rope_scaling.type == RopeScaling::Type::None);
}

TEST_CASE("config bad input: unsupported RoPE type or incomplete llama3 parameters") {
  auto e = parse_error<UnsupportedError>(cfg("LlamaForCausalLM", R"(,"rope_scaling":{"rope_type":"yarn","factor":4.0})"));
  CHECK(e.field() == "rope_scaling.rope_type");
  CHECK(contains(e.reason(), "yarn"));
  auto m = parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"rope_scaling":{"rope_type":"llama3","factor":8.0})"));
  CHECK(m.field() == "rope_scaling.low_freq_factor");
  CHECK(m.reason() == "missing");
  auto t = parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"rope_scaling":"linear")"));
  CHECK(t.field() == "rope_scaling");
}

TEST_CASE("config bad input: unsupported architecture names architectures") {
  auto e = parse_error<UnsupportedError>(R"({"architectures":["GPT2LMHeadModel"],"hidden_size":64})");
  CHECK(e.file() == "config.json");
  CHECK(e.field() == "architectures");
  CHECK(contains(e.reason(), "GPT2LMHeadModel"));
  CHECK(parse_error<ConfigError>(R"({"hidden_size":64})").field() == "architectures");
  CHECK(parse_error<ConfigError>(R"({"architectures":"LlamaForCausalLM"})").field() == "architectures");
}

TEST_CASE("config bad input: missing required field") {
  auto e = parse_error<ConfigError>(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_hidden_layers":2,
    "num_attention_heads":4,"vocab_size":100})");
  CHECK(e.field() == "intermediate_size");
  CHECK(e.reason() == "missing");
  auto n = parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"vocab_size":null)"));
  CHECK(n.field() == "vocab_size");
}

TEST_CASE("config bad input: wrong JSON types") {
  auto e = parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"hidden_size":"64")"));
  CHECK(e.field() == "hidden_size");
  CHECK(e.reason() == "expected integer, got string");
  CHECK(parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"num_hidden_layers":2.5)")).reason() ==
        "expected integer, got float");
  CHECK(parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"tie_word_embeddings":"yes")")).reason() ==
        "expected boolean, got string");
  CHECK(parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"rms_norm_eps":"1e-5")")).reason() ==
        "expected number, got string");
  CHECK(parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"eos_token_id":"2")")).field() == "eos_token_id");
  CHECK(parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"eos_token_id":[2,"x"])")).field() == "eos_token_id[1]");
  CHECK(parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"vocab_size":99999999999999999999)")).field() ==
        "vocab_size");
  CHECK(parse_error<ConfigError>("[1,2]").reason() == "expected a JSON object, got array");
}

TEST_CASE("config bad input: heads not a multiple of kv heads") {
  auto e = parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"num_key_value_heads":3)"));
  CHECK(e.field() == "num_key_value_heads");
  CHECK(contains(e.reason(), "not a multiple"));
}

TEST_CASE("config bad input: hidden size not a multiple of heads without head_dim") {
  auto e = parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"num_attention_heads":5)"));
  CHECK(e.field() == "head_dim");
  CHECK(contains(e.reason(), "not a multiple of num_attention_heads 5"));
  // With an explicit head_dim it is fine (Mistral Nemo style).
  CHECK(parse(cfg("LlamaForCausalLM", R"(,"num_attention_heads":5,"head_dim":16)")).head_dim == 16);
}

TEST_CASE("config bad input: non-positive sizes") {
  for (auto f : {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
                 "num_key_value_heads", "head_dim", "max_position_embeddings"}) {
    auto e = parse_error<ConfigError>(cfg("LlamaForCausalLM", std::string(",\"") + f + "\":0"));
    CHECK(e.field() == f);
    CHECK(contains(e.reason(), "must be positive"));
  }
  CHECK(parse_error<ConfigError>(cfg("MistralForCausalLM", R"(,"num_key_value_heads":4,"sliding_window":-1)")).field() ==
        "sliding_window");
}

TEST_CASE("config bad input: odd head_dim") {
  auto e = parse_error<ConfigError>(cfg("LlamaForCausalLM", R"(,"head_dim":15)"));
  CHECK(e.field() == "head_dim");
  CHECK(contains(e.reason(), "odd"));
}

TEST_CASE("config bad input: unsupported features") {
  CHECK(parse_error<UnsupportedError>(cfg("LlamaForCausalLM", R"(,"mlp_bias":true)")).field() == "mlp_bias");
  CHECK(parse_error<UnsupportedError>(cfg("LlamaForCausalLM", R"(,"attention_bias":true)")).field() == "attention_bias");
  CHECK(parse_error<UnsupportedError>(cfg("LlamaForCausalLM", R"(,"hidden_act":"gelu")")).field() == "hidden_act");
  CHECK(parse_error<UnsupportedError>(cfg("LlamaForCausalLM", R"(,"torch_dtype":"float64")")).field() == "torch_dtype");
  CHECK(parse_error<UnsupportedError>(cfg("LlamaForCausalLM", R"(,"partial_rotary_factor":0.5)")).field() ==
        "partial_rotary_factor");
}

TEST_CASE("config bad input: invalid UTF-8 and syntax errors give the byte position") {
  const auto text = cfg("LlamaForCausalLM", ",\"na\xc3\x28me\":1");  // 0xc3 must be followed by 0x80-0xbf
  auto e = parse_error<FormatError>(text);
  CHECK(e.file() == "config.json");
  CHECK(e.reason() == "invalid UTF-8 at byte " + std::to_string(text.find('\xc3')));
  auto s = parse_error<FormatError>(R"({"hidden_size": 64,})");
  CHECK(contains(s.reason(), "invalid JSON at byte 19"));
  CHECK(contains(parse_error<FormatError>("").reason(), "invalid JSON at byte 0"));
}

TEST_CASE("config: load_config reads a folder and generation_config.json overrides eos") {
  TempDir d;
  write_file(d / "config.json", cfg("LlamaForCausalLM", R"(,"eos_token_id":2)"));
  CHECK(load_config(d.path).eos_token_ids == std::vector<int64_t>{2});
  write_file(d / "generation_config.json", R"({"bos_token_id":5,"eos_token_id":[2,7],"do_sample":true})");
  auto c = load_config(d / "config.json");
  CHECK(c.eos_token_ids == std::vector<int64_t>{2, 7});
  CHECK(c.bos_token_id == 5);
  write_file(d / "generation_config.json", R"({"eos_token_id":"x"})");
  auto e = expect_error<ConfigError>([&] { load_config(d.path); });
  CHECK(contains(e.file(), "generation_config.json"));
  CHECK(expect_error<IoError>([&] { load_config(d / "missing"); }).reason() == "config.json not found");
}

TEST_CASE("checkpoint: Hugging Face folder or .safetensors file; clear errors when absent") {
  TempDir d;
  write_file(d / "config.json", cfg("LlamaForCausalLM"));
  std::vector<float> w(100 * 64, 0.5f);
  save_safetensors(d / "model.safetensors",
                   {TensorView{"model.embed_tokens.weight", DType::F32, {100, 64},
                               reinterpret_cast<const std::byte*>(w.data()), w.size() * 4, {}}});
  for (auto p : {d.path, d / "model.safetensors", d / "config.json"}) {
    auto ck = load_checkpoint(p);
    CHECK(ck.config.hidden_size == 64);
    CHECK(ck.weights.get("model.embed_tokens.weight", {100, 64}).as<float>()[7] == 0.5f);
    CHECK(ck.path == p);
  }
  auto e = expect_error<IoError>([&] { load_checkpoint(d / "nothing"); });
  CHECK(contains(e.reason(), "llama2.c .bin"));
  std::filesystem::remove(d / "config.json");
  auto e2 = expect_error<IoError>([&] { load_checkpoint(d.path); });
  CHECK(contains(e2.file(), "config.json"));
  write_file(d / "weights.txt", "x");
  CHECK(contains(expect_error<IoError>([&] { load_checkpoint(d / "weights.txt"); }).reason(), "unknown checkpoint"));
}

TEST_CASE("checkpoint: every committed transformers fixture model loads and matches its config") {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models";
  if (!fs::exists(root)) return;  // fixtures are committed by another area; nothing to check yet
  int n = 0;
  for (auto& entry : fs::directory_iterator(root)) {
    if (!fs::exists(entry.path() / "config.json")) continue;
    ++n;
    CAPTURE(entry.path().string());
    auto ck = load_checkpoint(entry.path());
    const auto& c = ck.config;
    const auto& w = ck.weights;
    w.get("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
    CHECK(w.contains("lm_head.weight") != c.tie_word_embeddings);
    const auto q_rows = c.num_attention_heads * c.head_dim, kv_rows = c.num_key_value_heads * c.head_dim;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const auto p = "model.layers." + std::to_string(l) + ".";
      w.get(p + "self_attn.q_proj.weight", {q_rows, c.hidden_size});
      w.get(p + "self_attn.k_proj.weight", {kv_rows, c.hidden_size});
      w.get(p + "self_attn.o_proj.weight", {c.hidden_size, q_rows});
      w.get(p + "mlp.down_proj.weight", {c.hidden_size, c.intermediate_size});
      CHECK(w.contains(p + "self_attn.q_proj.bias") == c.attention_bias);
      CHECK(w.contains(p + "self_attn.q_norm.weight") == c.qk_norm);
    }
  }
  CHECK(n > 0);
}

TEST_CASE("tensor names: the table spells transformers' names") {
  CHECK(hf_name(HfTensor::Embed) == "model.embed_tokens.weight");
  CHECK(hf_name(HfTensor::FinalNorm) == "model.norm.weight");
  CHECK(hf_name(HfTensor::LmHead) == "lm_head.weight");
  CHECK(hf_name(HfTensor::AttnNorm, 0) == "model.layers.0.input_layernorm.weight");
  CHECK(hf_name(HfTensor::MlpNorm, 7) == "model.layers.7.post_attention_layernorm.weight");
  CHECK(hf_name(HfTensor::Wq, 12) == "model.layers.12.self_attn.q_proj.weight");
  CHECK(hf_name(HfTensor::Bv, 1) == "model.layers.1.self_attn.v_proj.bias");
  CHECK(hf_name(HfTensor::KNorm, 2) == "model.layers.2.self_attn.k_norm.weight");
  CHECK(hf_name(HfTensor::Down, 3) == "model.layers.3.mlp.down_proj.weight");
  CHECK(hf_layer_name(HfTensor::Up, "*") == "model.layers.*.mlp.up_proj.weight");
  CHECK(hf_role(HfTensor::QNorm) == HfRole::Norm);
  CHECK(hf_role(HfTensor::Bq) == HfRole::Bias);
  CHECK(hf_role(HfTensor::LmHead) == HfRole::Matrix);
  CHECK_THROWS_AS(hf_name(HfTensor::Wq), UsageError);  // a per-layer tensor without its layer
}

TEST_CASE("tensor names: hf_tensors lists exactly the tensors of every transformers fixture") {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models";
  int n = 0;
  for (auto& entry : fs::directory_iterator(root)) {
    if (!fs::exists(entry.path() / "config.json")) continue;
    ++n;
    CAPTURE(entry.path().string());
    const auto ck = load_checkpoint(entry.path());
    std::map<std::string, std::vector<int64_t>> want;
    for (const auto& t : hf_tensors(ck.config)) want[t.name] = t.shape;
    const auto names = ck.weights.names();
    CHECK(names.size() == want.size());
    for (const auto& name : names) {
      CAPTURE(name);
      REQUIRE(want.count(name) == 1);
      CHECK(ck.weights.get(name).shape == want[name]);
    }
  }
  CHECK(n > 0);
}

TEST_CASE("read_text_file: the bytes as they are; a missing file is an IoError naming it") {
  TempDir d;
  const std::string bytes("line 1\r\nline 2\n\0\xff end", 21);
  write_file(d / "t.txt", bytes);
  CHECK(read_text_file(d / "t.txt") == bytes);
  write_file(d / "empty.txt", "");
  CHECK(read_text_file(d / "empty.txt").empty());
  auto e = expect_error<IoError>([&] { read_text_file(d / "missing.txt"); });
  CHECK(contains(e.file(), "missing.txt"));
}

namespace {
void check_same(const ModelConfig& a, const ModelConfig& b) {
  CHECK(a.family == b.family);
  CHECK(a.hidden_size == b.hidden_size);
  CHECK(a.num_hidden_layers == b.num_hidden_layers);
  CHECK(a.num_attention_heads == b.num_attention_heads);
  CHECK(a.num_key_value_heads == b.num_key_value_heads);
  CHECK(a.head_dim == b.head_dim);
  CHECK(a.intermediate_size == b.intermediate_size);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.rms_norm_eps == b.rms_norm_eps);
  CHECK(a.rope_theta == b.rope_theta);
  CHECK(a.rope_scaling.type == b.rope_scaling.type);
  if (a.rope_scaling.type != RopeScaling::Type::None) {
    CHECK(a.rope_scaling.factor == b.rope_scaling.factor);
    if (a.rope_scaling.type == RopeScaling::Type::Llama3) {
      CHECK(a.rope_scaling.low_freq_factor == b.rope_scaling.low_freq_factor);
      CHECK(a.rope_scaling.high_freq_factor == b.rope_scaling.high_freq_factor);
      CHECK(a.rope_scaling.original_max_position_embeddings == b.rope_scaling.original_max_position_embeddings);
    }
  }
  CHECK(a.max_position_embeddings == b.max_position_embeddings);
  CHECK(a.tie_word_embeddings == b.tie_word_embeddings);
  CHECK(a.sliding_window == b.sliding_window);
  CHECK(a.attention_bias == b.attention_bias);
  CHECK(a.qk_norm == b.qk_norm);
  CHECK(a.bos_token_id == b.bos_token_id);
  CHECK(a.eos_token_ids == b.eos_token_ids);
  CHECK(a.torch_dtype == b.torch_dtype);
}
}  // namespace

TEST_CASE("config_to_json: parse_config reads every kind of config back unchanged") {
  std::vector<ModelConfig> configs;
  namespace fs = std::filesystem;
  for (auto& e : fs::directory_iterator(fs::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models"))
    if (fs::exists(e.path() / "config.json")) configs.push_back(load_config(e.path()));
  REQUIRE(configs.size() >= 7);
  configs.push_back(parse(cfg("MistralForCausalLM", R"(,"num_key_value_heads":2,"sliding_window":null,"eos_token_id":[])")));
  configs.push_back(parse(cfg("Qwen2ForCausalLM", R"(,"num_key_value_heads":4,"use_sliding_window":true,"sliding_window":6,"max_window_layers":0)")));
  configs.push_back(parse(cfg("LlamaForCausalLM", R"(,"bos_token_id":null,"torch_dtype":"float16",)"
                                                  R"("rope_scaling":{"rope_type":"linear","factor":2.5})")));
  ModelConfig l2c = configs.front();  // as a llama2.c header gives it
  l2c.architecture = "llama2.c";
  l2c.family = Family::Llama;
  l2c.attention_bias = l2c.qk_norm = false;
  configs.push_back(l2c);
  for (const ModelConfig& c : configs) {
    CAPTURE(c.architecture);
    const std::string text = config_to_json(c).dump(2);
    CAPTURE(text);
    check_same(parse(text), c);
  }
}

TEST_CASE("errors name the file, the field and the reason; without a file the argument leads") {
  CHECK(std::string(FormatError("m.gguf", "tensor blk.0", "truncated").what()) ==
        "m.gguf: tensor blk.0: truncated");
  CHECK(std::string(UsageError("", "alpha", "must be >= 0").what()) == "alpha: must be >= 0");
  CHECK(std::string(UsageError("", "", "no policy given").what()) == "no policy given");
  CHECK(std::string(IoError("x.txt", "", "cannot open").what()) == "x.txt: cannot open");
}
