// save_model and Q8 checkpoints (model/save.hpp, model/q8_checkpoint.hpp): a model quantised at
// load, saved and loaded again computes the same logits bit for bit; a model saved as stored
// reloads unchanged (a tied head stays tied); every kind of damaged Q8 tensor is a FormatError
// naming the tensor.
#include "fixture_util.hpp"
#include "io_test_util.hpp"

#include <cstring>

#include "fathom/io/checkpoint.hpp"
#include "fathom/model/save.hpp"
#include "fathom/model/session.hpp"

using namespace fathom;
using fathom::test::contains;
using fathom::test::expect_error;
using fathom::test::TempDir;

namespace {

const char* kModels[] = {"llama_f32", "llama_bf16_tied", "mistral_f32", "qwen2_bf16", "qwen3_bf16_tied"};

// Logits of every position of the fixture's prompt.
std::vector<float> logits(const Model& m, const std::vector<int32_t>& ids) {
  Session s(m);
  auto l = s.forward(ids, Phase::PP, Logits::All);
  return {l.begin(), l.end()};
}

std::vector<int32_t> prompt(const std::string& name) {
  fixtures::Expected ex(fixtures::model_dir(name) / "expected.safetensors");
  return ex.ids("input_ids");
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("a model quantised at load, saved and reloaded gives the same logits bit for bit") {
  for (const char* name : kModels) {
    CAPTURE(name);
    const auto ids = prompt(name);
    auto q8 = load_model(fixtures::model_dir(name), {WeightFormat::Q8});
    const auto want = logits(*q8, ids);
    TempDir dir;
    save_model(*q8, dir.path);
    auto ck = io::load_checkpoint(dir.path);
    // every matrix is int8 values + f16 scales; the quantised tied head is its own tensor
    CHECK(ck.weights.get("model.layers.0.mlp.up_proj.weight").dtype == DType::I8);
    CHECK(ck.weights.get("model.layers.0.mlp.up_proj.weight_scale").dtype == DType::F16);
    CHECK(ck.weights.get("lm_head.weight").dtype == DType::I8);
    CHECK_FALSE(ck.config.tie_word_embeddings);
    CHECK(test::contains(test::read_file(dir / "config.json"), "\"quant_method\": \"fathom_q8\""));
    for (WeightFormat f : {WeightFormat::AsStored, WeightFormat::Q8}) {
      auto back = load_model(dir.path, {f});
      CHECK(back->layer(0).mlp.up.dtype == DType::Q8);
      CHECK(same_bits(logits(*back, ids), want));
    }
    // dequantised to f32: the weights are exact, only the activations are no longer quantised
    auto f32 = load_model(dir.path, {WeightFormat::F32});
    CHECK(f32->layer(0).mlp.up.at(3, 5) == q8->layer(0).mlp.up.at(3, 5));
    const auto deq = logits(*f32, ids);
    CHECK(fixtures::rel_err(deq, want) < 0.05);
  }
}

TEST_CASE("a model saved as stored reloads unchanged; a tied head stays tied") {
  for (const char* name : {"llama_bf16_tied", "qwen2_f32"}) {
    CAPTURE(name);
    const auto ids = prompt(name);
    auto m = load_model(fixtures::model_dir(name));
    TempDir dir;
    save_model(*m, dir.path);
    auto ck = io::load_checkpoint(dir.path);
    CHECK(ck.config.tie_word_embeddings == m->config().tie_word_embeddings);
    CHECK(ck.weights.contains("lm_head.weight") == !m->config().tie_word_embeddings);
    CHECK(same_bits(logits(*load_model(dir.path), ids), logits(*m, ids)));
  }
}

TEST_CASE("Q8 checkpoint bad input: each damaged tensor is a FormatError naming it") {
  auto q8 = load_model(fixtures::model_dir("qwen2_bf16"), {WeightFormat::Q8});
  TempDir dir;
  save_model(*q8, dir.path);
  const auto ck = io::load_checkpoint(dir.path);
  const std::string W = "model.layers.1.mlp.gate_proj.weight", S = W + "_scale";

  // A copy of the checkpoint's tensors with `edit` applied to the named one's bytes / metadata.
  auto build = [&](const std::string& target, auto edit, bool drop = false) {
    auto store = std::make_shared<io::TensorStore>();
    for (const auto& n : ck.weights.names()) {
      const auto& t = ck.weights.get(n);
      if (n == target && drop) continue;
      std::vector<std::byte> bytes(t.data, t.data + t.nbytes);
      DType dt = t.dtype;
      std::vector<int64_t> shape = t.shape;
      if (n == target) edit(bytes, dt, shape);
      store->add_owned(n, dt, shape, std::move(bytes), "q8.safetensors");
    }
    return store;
  };
  auto error_for = [&](std::shared_ptr<io::TensorStore> store) {
    return expect_error<FormatError>([&] { Model m(ck.config, store); });
  };
  using Bytes = std::vector<std::byte>;
  using Shape = std::vector<int64_t>;

  SUBCASE("missing scale tensor") {
    auto e = error_for(build(S, [](Bytes&, DType&, Shape&) {}, true));
    CHECK(contains(e.what(), S));
    CHECK(contains(e.what(), "missing tensor"));
  }
  SUBCASE("scale of the wrong shape") {
    auto e = error_for(build(S, [](Bytes& b, DType&, Shape& s) { s[1] -= 1; b.resize(size_t(s[0] * s[1]) * 2); }));
    CHECK(contains(e.what(), S));
    CHECK(contains(e.what(), "block scales"));
  }
  SUBCASE("scale of the wrong dtype") {
    auto e = error_for(build(S, [](Bytes& b, DType& d, Shape&) { d = DType::BF16; (void)b; }));
    CHECK(contains(e.what(), "expected F16"));
  }
  SUBCASE("non-finite or negative scale") {
    for (uint16_t bad : {uint16_t(0x7e00), uint16_t(0x7c00), uint16_t(0xbc00)}) {  // NaN, inf, -1
      auto e = error_for(build(S, [bad](Bytes& b, DType&, Shape&) { std::memcpy(b.data(), &bad, 2); }));
      CHECK(contains(e.what(), S));
      CHECK(contains(e.what(), "at [0, 0]"));
    }
  }
  SUBCASE("value -128") {
    auto e = error_for(build(W, [](Bytes& b, DType&, Shape&) { b[5] = std::byte(0x80); }));
    CHECK(contains(e.what(), W));
    CHECK(contains(e.what(), "-128 at [0, 5]"));
  }
  SUBCASE("values of the wrong shape") {
    auto e = error_for(build(W, [](Bytes& b, DType&, Shape& s) { s[0] -= 1; b.resize(size_t(s[0] * s[1])); }));
    CHECK(contains(e.what(), W));
    CHECK(contains(e.what(), "shape"));
  }
  SUBCASE("an int8 embedding without its scales (a Q8 embedding, as saved from a GGUF Q8_0 one)") {
    auto e = error_for(build("model.embed_tokens.weight", [](Bytes& b, DType& d, Shape&) {
      d = DType::I8;
      b.resize(b.size() / 2);
    }));
    CHECK(contains(e.what(), "model.embed_tokens.weight_scale"));
    CHECK(contains(e.what(), "missing tensor"));
  }
}
