// save_model and Q8 checkpoints (model/save.hpp, model/q8_checkpoint.hpp): a model quantised at
// load, saved and loaded again computes the same logits bit for bit; a model saved as stored
// reloads unchanged (a tied head stays tied); every kind of damaged Q8 tensor is a FormatError
// naming the tensor; what Q8 costs (eval/model_diff.hpp): weight error, logit change and KL.
#include "fixture_util.hpp"
#include "io_test_util.hpp"

#include <cmath>
#include <cstring>

#include "fathom/eval/model_diff.hpp"
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

TEST_CASE("Q8 checkpoint bad input: an empty matrix is a FormatError (no size bounds its other dimension)") {
  // [rows, 0] has no bytes, so nothing bounds rows: the copy loop would walk them all.
  const io::TensorView values{"w", DType::I8, {int64_t(1) << 62, 0}, nullptr, 0, "q8.safetensors"};
  const io::TensorView scales{"w_scale", DType::F16, {int64_t(1) << 62, 0}, nullptr, 0, "q8.safetensors"};
  auto e = expect_error<FormatError>([&] { (void)q8_from_tensors(values, scales); });
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "must not be empty"));
  const io::TensorView none{"v", DType::I8, {0, 32}, nullptr, 0, "q8.safetensors"};
  const io::TensorView none_scale{"v_scale", DType::F16, {0, 1}, nullptr, 0, "q8.safetensors"};
  CHECK_THROWS_AS((void)q8_from_tensors(none, none_scale), FormatError);
}

TEST_CASE("Model::matrices lists every matrix once; weight bytes per token follow the config") {
  auto m = load_model(fixtures::model_dir("llama_f32"));
  const auto& c = m->config();
  const auto all = m->matrices();
  REQUIRE(all.size() == 7 * m->n_layers() + 1);
  CHECK(all.front() == &m->layer(0).attn.wq);
  CHECK(all[6] == &m->layer(0).mlp.down);
  CHECK(all.back() == &m->readout().unembed);
  const int64_t H = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim, I = c.intermediate_size;
  const int64_t per_layer = 2 * q * H + 2 * kv * H + 3 * I * H;  // q, o; k, v; gate, up, down
  const int64_t floats = c.num_hidden_layers * per_layer + c.vocab_size * H + H;  // + head, embedding row
  CHECK(m->weight_bytes_per_token() == size_t(floats) * sizeof(float));
}

TEST_CASE("model diff: relative weight error, logit change and KL against hand-made values") {
  const float w[] = {3, 4}, q[] = {3, 5};
  CHECK(eval::relative_rms_error({DType::F32, 1, 2, w}, {DType::F32, 1, 2, q}) == doctest::Approx(0.2));
  CHECK(eval::relative_rms_error({DType::F32, 1, 2, w}, {DType::F32, 1, 2, w}) == 0);
  CHECK_THROWS_AS(eval::relative_rms_error({DType::F32, 1, 2, w}, {DType::F32, 2, 1, q}), UsageError);

  // p = (1/2, 1/2), q = (1/4, 3/4): KL = ½ ln 2 + ½ ln(2/3) = ½ ln(4/3); shifts change nothing.
  const std::vector<float> lp = {0, 0}, lq = {0, float(std::log(3.0))}, lq_shift = {100, 100 + lq[1]};
  CHECK(eval::logit_kl(lp, lq) == doctest::Approx(0.5 * std::log(4.0 / 3.0)).epsilon(1e-6));
  CHECK(eval::logit_kl(lp, lq_shift) == doctest::Approx(0.5 * std::log(4.0 / 3.0)).epsilon(1e-5));
  CHECK(eval::logit_kl(lq, lq) == doctest::Approx(0).epsilon(1e-12));

  // Against Σ p (log p − log q) with both softmaxes in double, on 500 seeded logits.
  std::vector<float> a(500), b(500);
  uint64_t st = 7;
  for (size_t v = 0; v < a.size(); ++v) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    a[v] = float(int64_t(st >> 40) % 2000) / 100.f - 10.f;
    b[v] = a[v] + float(int64_t(st >> 20) % 200) / 1000.f - 0.1f;
  }
  auto softmax = [](const std::vector<float>& z) {
    double mx = z[0], sum = 0;
    for (float x : z) mx = std::max(mx, double(x));
    std::vector<double> p(z.size());
    for (size_t i = 0; i < z.size(); ++i) sum += p[i] = std::exp(double(z[i]) - mx);
    for (double& x : p) x /= sum;
    return p;
  };
  const auto pa = softmax(a), pb = softmax(b);
  double ref = 0;
  for (size_t v = 0; v < a.size(); ++v) ref += pa[v] * (std::log(pa[v]) - std::log(pb[v]));
  CHECK(ref > 0);
  CHECK(eval::logit_kl(a, b) == doctest::Approx(ref).epsilon(1e-6));

  // 2 positions, vocabulary 3: top-1 agrees at the first only.
  const std::vector<float> la = {1, 2, 3, 0, 5, 1}, lb = {1, 2, 2.5f, 0, 4, 6};
  const auto d = eval::logit_diff(la, lb, 3);
  CHECK(d.positions == 2);
  CHECK(d.top1_agree == 1);
  CHECK(d.top1_agreement() == 0.5);
  CHECK(d.max_abs == 5);
  CHECK(d.max_dev == 5);
  const std::span<const float> sa(la), sb(lb);
  CHECK(d.kl_sum == doctest::Approx(eval::logit_kl(sa.first(3), sb.first(3)) +
                                    eval::logit_kl(sa.last(3), sb.last(3))));
  CHECK(d.mean_kl() == doctest::Approx(d.kl_sum / 2));
  CHECK_THROWS_AS(eval::logit_diff(la, lb, 4), UsageError);
}

TEST_CASE("model diff: a model against its Q8 form") {
  auto f32 = load_model(fixtures::model_dir("qwen2_f32"));
  auto q8 = load_model(fixtures::model_dir("qwen2_f32"), {WeightFormat::Q8});
  const auto same = eval::weight_diff(*f32, *f32);
  CHECK(same.max_error == 0);
  CHECK(same.bytes_a == same.bytes_b);
  const auto d = eval::weight_diff(*f32, *q8);
  CHECK(d.matrices == f32->matrices().size());
  CHECK(d.bytes_a == f32->weight_bytes_per_token() - f32->hidden() * sizeof(float));
  size_t q8_bytes = 0;
  for (auto* w : f32->matrices()) q8_bytes += kernels::q8_bytes(w->rows, w->cols);
  CHECK(d.bytes_b == q8_bytes);
  CHECK(d.mean_error > 0);
  CHECK(d.mean_error < 0.02);  // 8 bits per weight with a scale per 32
  CHECK(d.max_error >= d.mean_error);
  const auto ids = prompt("qwen2_f32");
  const auto la = logits(*f32, ids), lq = logits(*q8, ids);
  const auto ld = eval::logit_diff(la, lq, f32->vocab());
  CHECK(ld.positions == ids.size());
  CHECK(ld.max_dev > 0);
  CHECK(ld.max_dev < 0.1 * ld.max_abs);
  CHECK(ld.mean_kl() > 0);
  CHECK(ld.mean_kl() < 0.01);
  CHECK(eval::logit_diff(la, la, f32->vocab()).mean_kl() == doctest::Approx(0).epsilon(1e-12));
}
