// GGUF files as checkpoints, on tiny models built byte by byte (tests/gguf_test_writer.hpp): the
// llama Q/K row permutation, metadata -> ModelConfig, tensors under their HF names in every
// in-memory form, the model they make, and one test per bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fathom/blocks/rope.hpp"
#include "fathom/io/gguf_checkpoint.hpp"
#include "fathom/model/load.hpp"
#include "fathom/model/save.hpp"
#include "fathom/model/session.hpp"
#include "gguf_test_writer.hpp"
#include "io_test_util.hpp"

using namespace fathom;
using namespace fathom::io;
using fathom::test::contains;
using fathom::test::expect_error;
using fathom::test::GgufBuilder;
using fathom::test::TempDir;

namespace {

constexpr uint32_t kU32 = 4, kI32 = 5, kF32v = 6, kStr = 8, kArr = 9;

// llama.cpp's permutation of Q/K rows (convert_hf_to_gguf.py `permute`: reshape(heads, 2, d/2,
// cols).swapaxes(1, 2)), written out index by index: file row (h, i, p) = HF row (h, p, i).
std::vector<size_t> llama_cpp_forward_rows(size_t heads, size_t head_dim) {
  std::vector<size_t> hf_row_of_file_row(heads * head_dim);
  const size_t half = head_dim / 2;
  for (size_t h = 0; h < heads; ++h)
    for (size_t i = 0; i < half; ++i)
      for (size_t p = 0; p < 2; ++p) hf_row_of_file_row[h * head_dim + i * 2 + p] = h * head_dim + p * half + i;
  return hf_row_of_file_row;
}

// ggml's llama RoPE: pairs (2i, 2i+1) of each head rotated by position * inv_freq[i].
void rope_interleaved(float* v, size_t heads, size_t hd, const std::vector<float>& inv_freq, int64_t pos) {
  for (size_t h = 0; h < heads; ++h)
    for (size_t i = 0; i < hd / 2; ++i) {
      const float a = float(pos) * inv_freq[i];
      const float c = float(std::cos(double(a))), s = float(std::sin(double(a)));
      float& x0 = v[h * hd + 2 * i];
      float& x1 = v[h * hd + 2 * i + 1];
      const float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
      x0 = y0, x1 = y1;
    }
}

std::vector<float> matvec(const std::vector<float>& W, size_t rows, size_t cols, const std::vector<float>& x) {
  std::vector<float> y(rows, 0.f);  // [rows]
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) y[r] += W[r * cols + c] * x[c];
  return y;
}

// ---- encoding rows of f32 values as ggml types ----

std::string f32_bytes(const float* x, size_t n) { return std::string(reinterpret_cast<const char*>(x), n * 4); }
void put_f16(std::string& s, float f) {
  const uint16_t h = kernels::detail::f32_to_f16(f);
  s.append(reinterpret_cast<const char*>(&h), 2);
}

// One row of `cols` values as `type` (F32, F16, Q8_0, Q4_1 or Q5_0, llama.cpp's reference quantisers).
std::string encode_row(GgmlType type, const float* x, size_t cols) {
  std::string s;
  if (type == GgmlType::F32) return f32_bytes(x, cols);
  if (type == GgmlType::F16) {
    for (size_t i = 0; i < cols; ++i) put_f16(s, x[i]);
    return s;
  }
  for (size_t b = 0; b < cols; b += 32) {
    const float* v = x + b;
    if (type == GgmlType::Q8_0) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::abs(v[i]));
      const float d = amax / 127.f, id = d ? 1.f / d : 0.f;
      put_f16(s, d);
      for (int i = 0; i < 32; ++i) s += char(int8_t(std::lround(v[i] * id)));
    } else if (type == GgmlType::Q5_0) {  // d = signed extreme / -16, q = x / d + 16 in 0..31
      float amax = 0, max = 0;
      for (int i = 0; i < 32; ++i)
        if (std::abs(v[i]) > amax) amax = std::abs(v[i]), max = v[i];
      const float d = max / -16.f, id = d ? 1.f / d : 0.f;
      put_f16(s, d);
      uint32_t qh = 0;
      std::string qs;
      for (int j = 0; j < 16; ++j) {
        const int q0 = std::min(31, int(int8_t(v[j] * id + 16.5f))), q1 = std::min(31, int(int8_t(v[j + 16] * id + 16.5f)));
        qs += char(uint8_t((q0 & 15) | (q1 & 15) << 4));
        qh |= uint32_t(q0 >> 4) << j | uint32_t(q1 >> 4) << (j + 16);
      }
      s.append(reinterpret_cast<const char*>(&qh), 4);
      s += qs;
    } else {  // Q4_1
      float lo = v[0], hi = v[0];
      for (int i = 0; i < 32; ++i) lo = std::min(lo, v[i]), hi = std::max(hi, v[i]);
      const float d = (hi - lo) / 15.f, id = d ? 1.f / d : 0.f;
      put_f16(s, d);
      put_f16(s, lo);
      for (int j = 0; j < 16; ++j) {
        const int q0 = std::min(15, int((v[j] - lo) * id + 0.5f)), q1 = std::min(15, int((v[j + 16] - lo) * id + 0.5f));
        s += char(uint8_t(q0 | (q1 << 4)));
      }
    }
  }
  return s;
}

// ---- a tiny model written as a GGUF file ----

struct Tiny {
  std::string arch = "llama";
  int64_t H = 64, L = 2, nh = 4, nkv = 2, hd = 16, I = 96, V = 40;
  bool tied = true;
  GgmlType embed = GgmlType::Q8_0;                // token_embd's type
  std::set<std::string> omit_keys;                // metadata keys left out
  std::function<void(GgufBuilder&)> extra_kvs;    // more metadata
  std::function<void(GgufBuilder&)> extra_tensors;
  std::function<void(const std::string&, std::string&)> edit_tensor;  // (gguf name, file bytes)
};

struct Built {
  std::string bytes;                             // the .gguf file
  std::map<std::string, std::vector<float>> hf;  // HF name -> exact f32 values, torch order
  std::map<std::string, std::vector<int64_t>> shapes;
};

Built build(const Tiny& m) {
  Built out;
  GgufBuilder b;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> U(-0.5f, 0.5f);
  const bool llama = m.arch == "llama";
  auto kv_u32 = [&](const std::string& k, uint32_t v) {
    if (!m.omit_keys.count(k)) b.kv_u32(k, v);
  };
  auto kv_f32 = [&](const std::string& k, float v) {
    if (!m.omit_keys.count(k)) b.kv(k, kF32v, GgufBuilder::raw(v));
  };
  b.kv_str("general.architecture", m.arch);
  const std::string a = m.arch + ".";
  kv_u32(a + "block_count", uint32_t(m.L));
  kv_u32(a + "embedding_length", uint32_t(m.H));
  kv_u32(a + "feed_forward_length", uint32_t(m.I));
  kv_u32(a + "attention.head_count", uint32_t(m.nh));
  kv_u32(a + "attention.head_count_kv", uint32_t(m.nkv));
  kv_u32(a + "context_length", 256);
  kv_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  kv_f32(a + "rope.freq_base", 10000.f);
  if (m.arch == "qwen3") kv_u32(a + "attention.key_length", uint32_t(m.hd));
  else kv_u32(a + "rope.dimension_count", uint32_t(m.hd));
  kv_u32("tokenizer.ggml.bos_token_id", 1);
  kv_u32("tokenizer.ggml.eos_token_id", 2);
  if (m.extra_kvs) m.extra_kvs(b);

  // A tensor of `rows` x `cols` random values stored as `type`; `heads` > 0: Q/K rows of a llama
  // file, written in llama.cpp's permuted order.
  auto add = [&](const std::string& gguf, const std::string& hf, GgmlType type, size_t rows, size_t cols,
                 size_t heads = 0, float base = 0.f) {
    std::vector<float> x(rows * cols);  // [rows, cols] HF order
    for (auto& v : x) v = base + U(rng);
    std::vector<std::string> enc(rows);
    std::vector<float> exact(rows * cols);
    for (size_t r = 0; r < rows; ++r) {
      enc[r] = encode_row(type, x.data() + r * cols, cols);
      dequantize(type, reinterpret_cast<const std::byte*>(enc[r].data()), cols, exact.data() + r * cols);
    }
    std::string bytes;
    if (heads && llama && cols > 1) {
      for (size_t hf_row : llama_cpp_forward_rows(heads, rows / heads)) bytes += enc[hf_row];
    } else if (heads && llama) {  // a bias: rows are elements
      std::string all;
      for (auto& e : enc) all += e;
      for (size_t hf_row : llama_cpp_forward_rows(heads, rows / heads)) bytes += all.substr(hf_row * 4, 4);
    } else {
      for (auto& e : enc) bytes += e;
    }
    if (m.edit_tensor) m.edit_tensor(gguf, bytes);
    std::vector<uint64_t> ne = cols > 1 ? std::vector<uint64_t>{cols, rows} : std::vector<uint64_t>{rows};
    b.tensor(gguf, uint32_t(type), ne, bytes);
    out.hf[hf] = exact;
    out.shapes[hf] = cols > 1 ? std::vector<int64_t>{int64_t(rows), int64_t(cols)} : std::vector<int64_t>{int64_t(rows)};
  };
  const size_t H = size_t(m.H), I = size_t(m.I), hd = size_t(m.hd), nh = size_t(m.nh), nkv = size_t(m.nkv);
  add("token_embd.weight", "model.embed_tokens.weight", m.embed, size_t(m.V), H);
  for (int64_t l = 0; l < m.L; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", p = "model.layers." + std::to_string(l) + ".";
    add(g + "attn_norm.weight", p + "input_layernorm.weight", GgmlType::F32, H, 1, 0, 1.f);
    add(g + "attn_q.weight", p + "self_attn.q_proj.weight", GgmlType::Q4_1, nh * hd, H, nh);
    add(g + "attn_k.weight", p + "self_attn.k_proj.weight", GgmlType::F16, nkv * hd, H, nkv);
    add(g + "attn_v.weight", p + "self_attn.v_proj.weight", GgmlType::F32, nkv * hd, H);
    if (m.arch == "qwen2") {
      add(g + "attn_q.bias", p + "self_attn.q_proj.bias", GgmlType::F32, nh * hd, 1, nh);
      add(g + "attn_k.bias", p + "self_attn.k_proj.bias", GgmlType::F32, nkv * hd, 1, nkv);
      add(g + "attn_v.bias", p + "self_attn.v_proj.bias", GgmlType::F32, nkv * hd, 1);
    }
    if (m.arch == "qwen3") {
      add(g + "attn_q_norm.weight", p + "self_attn.q_norm.weight", GgmlType::F32, hd, 1, 0, 1.f);
      add(g + "attn_k_norm.weight", p + "self_attn.k_norm.weight", GgmlType::F32, hd, 1, 0, 1.f);
    }
    add(g + "attn_output.weight", p + "self_attn.o_proj.weight", GgmlType::Q8_0, H, nh * hd);
    add(g + "ffn_norm.weight", p + "post_attention_layernorm.weight", GgmlType::F32, H, 1, 0, 1.f);
    add(g + "ffn_gate.weight", p + "mlp.gate_proj.weight", GgmlType::Q4_1, I, H);
    add(g + "ffn_up.weight", p + "mlp.up_proj.weight", GgmlType::Q5_0, I, H);
    add(g + "ffn_down.weight", p + "mlp.down_proj.weight", GgmlType::Q8_0, H, I);
  }
  add("output_norm.weight", "model.norm.weight", GgmlType::F32, H, 1, 0, 1.f);
  if (!m.tied) add("output.weight", "lm_head.weight", GgmlType::Q4_1, size_t(m.V), H);
  if (m.extra_tensors) m.extra_tensors(b);
  out.bytes = b.build();
  return out;
}

struct TinyFile {
  TempDir dir;
  Built built;
  std::filesystem::path path;
  explicit TinyFile(const Tiny& m = {}) : built(build(m)), path(dir / "tiny.gguf") {
    fathom::test::write_file(path, built.bytes);
  }
};

// The reference: the HF weights in f32, as a TensorStore the Model reads directly.
std::shared_ptr<TensorStore> hf_store(const Built& b) {
  auto s = std::make_shared<TensorStore>();
  for (auto& [name, v] : b.hf) {
    std::vector<std::byte> bytes(v.size() * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
    s->add_owned(name, DType::F32, b.shapes.at(name), std::move(bytes));
  }
  return s;
}

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& ids) {
  Session s(m);
  auto l = s.forward(ids, Phase::PP, Logits::All);
  return {l.begin(), l.end()};
}

std::vector<float> as_f32(const TensorView& t) {
  const size_t rows = t.shape.size() == 2 ? size_t(t.shape[0]) : 1, cols = size_t(t.shape.back());
  kernels::MatrixView m{t.dtype, rows, cols, t.data};
  std::vector<float> v(rows * cols);
  for (size_t i = 0; i < v.size(); ++i) v[i] = m.at(i / cols, i % cols);
  return v;
}

template <class E>
E load_error(const Tiny& m) {
  TinyFile f(m);
  return expect_error<E>([&] { load_gguf(f.path); });
}

}  // namespace

TEST_CASE("gguf llama Q/K: un-permuting inverts llama.cpp's permutation, and attention scores agree") {
  const size_t nh = 4, nkv = 2, hd = 32, cols = 24;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> U(-1.f, 1.f);
  std::vector<float> wq(nh * hd * cols), wk(nkv * hd * cols), x(cols);  // HF [rows, cols], x [cols]
  for (auto* v : {&wq, &wk, &x})
    for (auto& e : *v) e = U(rng);
  // The file's matrices: llama.cpp's forward permutation.
  auto to_file = [&](const std::vector<float>& w, size_t heads) {
    std::vector<float> f(w.size());
    const auto hf_of = llama_cpp_forward_rows(heads, hd);
    for (size_t r = 0; r < hf_of.size(); ++r) std::copy_n(&w[hf_of[r] * cols], cols, &f[r * cols]);
    return f;
  };
  const auto fq = to_file(wq, nh), fk = to_file(wk, nkv);
  // fathom's inverse reads HF row r from file row llama_qk_file_row(r): the original rows back.
  for (size_t r = 0; r < nh * hd; ++r)
    CHECK(std::equal(&wq[r * cols], &wq[r * cols] + cols, &fq[llama_qk_file_row(r, hd) * cols]));
  for (size_t r = 0; r < nkv * hd; ++r)
    CHECK(std::equal(&wk[r * cols], &wk[r * cols] + cols, &fk[llama_qk_file_row(r, hd) * cols]));

  // Why the permutation exists: llama.cpp's interleaved RoPE on the file's rows gives the same
  // q.k scores as transformers' rotate-half RoPE on the HF rows.
  blocks::Rope rope(hd, 10000.0, {});
  std::vector<float> c(hd / 2), s(hd / 2);
  for (int64_t pq : {0, 3, 17}) {
    for (int64_t pk : {0, 5, 11}) {
      auto q_hf = matvec(wq, nh * hd, cols, x), k_hf = matvec(wk, nkv * hd, cols, x);
      auto q_f = matvec(fq, nh * hd, cols, x), k_f = matvec(fk, nkv * hd, cols, x);
      rope.angles(pq, c.data(), s.data());
      rope.apply(q_hf.data(), nh, c.data(), s.data());
      rope.angles(pk, c.data(), s.data());
      rope.apply(k_hf.data(), nkv, c.data(), s.data());
      rope_interleaved(q_f.data(), nh, hd, rope.inv_freq(), pq);
      rope_interleaved(k_f.data(), nkv, hd, rope.inv_freq(), pk);
      for (size_t h = 0; h < nh; ++h) {
        const size_t g = h / (nh / nkv);
        double a = 0, b = 0;
        for (size_t i = 0; i < hd; ++i) {
          a += double(q_hf[h * hd + i]) * k_hf[g * hd + i];
          b += double(q_f[h * hd + i]) * k_f[g * hd + i];
        }
        CAPTURE(pq);
        CAPTURE(pk);
        CHECK(a == doctest::Approx(b).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("gguf config: a llama file's metadata") {
  TinyFile f;
  const ModelConfig c = load_gguf(f.path).config;
  CHECK(c.family == Family::Llama);
  CHECK(c.architecture == "LlamaForCausalLM");
  CHECK(c.num_hidden_layers == 2);
  CHECK(c.hidden_size == 64);
  CHECK(c.intermediate_size == 96);
  CHECK(c.num_attention_heads == 4);
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.head_dim == 16);
  CHECK(c.vocab_size == 40);
  CHECK(c.rms_norm_eps == double(1e-5f));
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.rope_scaling.type == RopeScaling::Type::None);
  CHECK(c.max_position_embeddings == 256);
  CHECK(c.tie_word_embeddings);
  CHECK(c.sliding_window == 0);
  CHECK(!c.attention_bias);
  CHECK(!c.qk_norm);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_ids == std::vector<int64_t>{2});
}

TEST_CASE("gguf config: rope scaling, sliding window, eot token, untied head") {
  Tiny m;
  m.tied = false;
  m.extra_kvs = [](GgufBuilder& b) {
    b.kv_str("llama.rope.scaling.type", "linear");
    b.kv("llama.rope.scaling.factor", kF32v, GgufBuilder::raw(4.f));
    b.kv_u32("llama.attention.sliding_window", 8);
    b.kv_u32("tokenizer.ggml.eot_token_id", 7);
  };
  TinyFile f(m);
  const ModelConfig c = load_gguf(f.path).config;
  CHECK(c.rope_scaling.type == RopeScaling::Type::Linear);
  CHECK(c.rope_scaling.factor == 4.0);
  CHECK(c.sliding_window == 8);
  CHECK(c.family == Family::Mistral);  // ModelConfig's Llama has no window
  CHECK(c.eos_token_ids == std::vector<int64_t>{2, 7});
  CHECK(!c.tie_word_embeddings);

  Tiny l3;
  l3.extra_kvs = [](GgufBuilder& b) {
    b.kv_str("llama.rope.scaling.type", "llama3");
    b.kv("llama.rope.scaling.factor", kF32v, GgufBuilder::raw(8.f));
    b.kv("llama.rope.scaling.low_freq_factor", kF32v, GgufBuilder::raw(1.f));
    b.kv("llama.rope.scaling.high_freq_factor", kF32v, GgufBuilder::raw(4.f));
    b.kv_u32("llama.rope.scaling.original_context_length", 128);
  };
  TinyFile f3(l3);
  const ModelConfig c3 = load_gguf(f3.path).config;
  CHECK(c3.rope_scaling.type == RopeScaling::Type::Llama3);
  CHECK(c3.rope_scaling.factor == 8.0);
  CHECK(c3.rope_scaling.original_max_position_embeddings == 128);
}

TEST_CASE("gguf checkpoint: every tensor under its HF name, exact in f32 (llama, qwen2, qwen3)") {
  for (std::string arch : {"llama", "qwen2", "qwen3"}) {
    CAPTURE(arch);
    Tiny m;
    m.arch = arch;
    m.tied = arch != "qwen2";
    TinyFile f(m);
    const Checkpoint ck = load_gguf(f.path, WeightFormat::F32);
    CHECK(ck.config.attention_bias == (arch == "qwen2"));
    CHECK(ck.config.qk_norm == (arch == "qwen3"));
    CHECK(ck.weights.size() == f.built.hf.size());
    for (auto& [name, want] : f.built.hf) {
      CAPTURE(name);
      const TensorView& t = ck.weights.get(name, f.built.shapes.at(name));
      // Quantised types dequantised bit for bit; F16 stays F16 (the Model widens it, exactly).
      CHECK(t.dtype == (contains(name, "k_proj.weight") ? DType::F16 : DType::F32));
      CHECK(as_f32(t) == want);  // Q/K rows un-permuted (llama only)
    }
    // The model equals the one built from the HF weights themselves, bit for bit.
    auto gm = load_model(f.path, LoadOptions{WeightFormat::F32});
    Model ref(ck.config, hf_store(f.built));
    const std::vector<int32_t> ids{1, 5, 9, 33, 2, 17};
    CHECK(logits_of(*gm, ids) == logits_of(ref, ids));
  }
}

TEST_CASE("gguf checkpoint: held as stored, Q8_0, Q4_1 and Q5_0 keep their exact values (Q8, native Q4_1, Q5_0)") {
  TinyFile f;
  const Checkpoint ck = load_gguf(f.path, WeightFormat::AsStored);
  for (auto& [name, want] : f.built.hf) {
    CAPTURE(name);
    const TensorView& t = ck.weights.get(name, f.built.shapes.at(name));
    if (t.shape.size() == 1) {
      CHECK(t.dtype == DType::F32);
      continue;
    }
    const bool q8_0 = name == "model.embed_tokens.weight" || contains(name, "o_proj") || contains(name, "down_proj");
    const bool q4_1 = contains(name, "q_proj") || contains(name, "gate_proj");
    const bool q5_0 = contains(name, "up_proj");
    if (q8_0) {  // re-laid: every value exact
      CHECK(t.dtype == DType::Q8);
      CHECK(as_f32(t) == want);
    } else if (q4_1) {  // held natively (kernels/quant4.hpp): every value exact, rows un-permuted
      CHECK(t.dtype == DType::Q4_1);
      CHECK(as_f32(t) == want);
    } else if (q5_0) {  // held natively too
      CHECK(t.dtype == DType::Q5_0);
      CHECK(as_f32(t) == want);
    } else {  // F32 / F16: a view, or a permuted copy in the stored type
      CHECK((t.dtype == DType::F32 || t.dtype == DType::F16));
      CHECK(as_f32(t) == want);
    }
  }
  // --weights q8: Q4_1 becomes the Q8 that quantising the exact f32 weights gives.
  const Checkpoint q8 = load_gguf(f.path, WeightFormat::Q8);
  for (const char* name : {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.gate_proj.weight"}) {
    CAPTURE(name);
    const TensorView& t = q8.weights.get(name);
    REQUIRE(t.dtype == DType::Q8);
    const auto& w = f.built.hf.at(name);
    const auto q = kernels::quantize_q8({DType::F32, size_t(t.shape[0]), size_t(t.shape[1]), w.data()});
    CHECK(std::memcmp(t.data, q.view().data, q.bytes()) == 0);
  }
  // --weights bf16: quantised matrices are dequantised and rounded once.
  const Checkpoint bf = load_gguf(f.path, WeightFormat::BF16);
  const TensorView& q = bf.weights.get("model.layers.0.self_attn.q_proj.weight");
  CHECK(q.dtype == DType::BF16);
  const auto& want = f.built.hf.at("model.layers.0.self_attn.q_proj.weight");
  const auto got = as_f32(q);
  for (size_t i = 0; i < want.size(); ++i) REQUIRE(got[i] == bf16_to_f32(f32_to_bf16(want[i])));

  // The model: the Q8 embedding looks up exact rows; logits near the f32 model's.
  auto gm = load_model(f.path);
  auto f32 = load_model(f.path, LoadOptions{WeightFormat::F32});
  CHECK(gm->embedding().dtype == DType::Q8);
  std::vector<float> h(64);
  gm->embed(5, h.data());
  CHECK(std::equal(h.begin(), h.end(), f.built.hf.at("model.embed_tokens.weight").begin() + 5 * 64));
  const std::vector<int32_t> ids{1, 5, 9, 33};
  auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0, mx = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::abs(a[i] - b[i]))), mx = std::max(mx, double(std::abs(b[i])));
    return d / mx;
  };
  Model q8ref(load_gguf(f.path).config, hf_store(f.built), LoadOptions{WeightFormat::Q8});
  // Q8_0 matrices re-laid, not quantised a second time: closer to the f32 model than quantising
  // its f32 weights (this tiny random model amplifies 8-bit errors: 0.053 vs 0.137 measured).
  const auto lf = logits_of(*f32, ids);
  CHECK(rel(logits_of(*gm, ids), lf) < rel(logits_of(q8ref, ids), lf));
}

TEST_CASE("gguf checkpoint: a 4/5-bit embedding stays native: exact rows, the tied head multiplies the file's bytes") {
  Tiny m;
  m.embed = GgmlType::Q4_1;
  TinyFile f(m);
  const auto& want = f.built.hf.at("model.embed_tokens.weight");
  auto gm = load_model(f.path);  // as stored
  auto f32 = load_model(f.path, LoadOptions{WeightFormat::F32});
  auto q8 = load_model(f.path, LoadOptions{WeightFormat::Q8});
  CHECK(gm->embedding().dtype == DType::Q4_1);
  CHECK(gm->readout().unembed.dtype == DType::Q4_1);
  CHECK(gm->readout().unembed.data == gm->embedding().data);  // one copy, the file's bytes
  CHECK(q8->embedding().dtype == DType::Q8);
  CHECK(q8->readout().unembed.data == q8->embedding().data);
  CHECK(f32->readout().unembed.dtype == DType::F32);
  std::vector<float> h(64);
  for (const Model* model : {gm.get(), f32.get()}) {  // exact rows, whoever holds them
    model->embed(7, h.data());
    CHECK(std::equal(h.begin(), h.end(), want.begin() + 7 * 64));
  }
  // the f32 model's head holds the exact values too (they once went through Q8 on the way)
  const kernels::MatrixView& head = f32->readout().unembed;
  std::vector<float> hv(40 * 64);
  for (size_t i = 0; i < hv.size(); ++i) hv[i] = head.at(i / 64, i % 64);
  CHECK(hv == want);
  // exact prefill: the prompt's logits are the dequantised f32 model's, bit for bit
  const std::vector<int32_t> ids{1, 5, 9, 33};
  CHECK(logits_of(*gm, ids) == logits_of(*f32, ids));
  // one row of the file per token in the bandwidth bound: 2 blocks of 20 bytes
  size_t mats = 0;
  for (const auto* w : gm->matrices()) mats += Model::matrix_bytes(*w);
  CHECK(gm->weight_bytes_per_token() == mats + 2 * 20);
  CHECK_THROWS_AS(save_model(*gm, TempDir().path), UnsupportedError);
}

TEST_CASE("gguf checkpoint: a model held as Q8 saves and reloads bit for bit (Q8 embedding included)") {
  TinyFile f;
  CHECK_THROWS_AS(save_model(*load_model(f.path), TempDir().path), UnsupportedError);  // native Q4_1
  auto gm = load_model(f.path, LoadOptions{WeightFormat::Q8});
  TempDir out;
  save_model(*gm, out.path);
  auto back = load_model(out.path);
  CHECK(back->embedding().dtype == DType::Q8);
  const std::vector<int32_t> ids{1, 5, 9, 33, 2};
  CHECK(logits_of(*back, ids) == logits_of(*gm, ids));
}

// ---- bad input: one test each ----

TEST_CASE("gguf bad input: unsupported architecture") {
  Tiny m;
  m.arch = "gpt2";
  auto e = load_error<UnsupportedError>(m);
  CHECK(e.field() == "general.architecture");
  CHECK(contains(e.reason(), "'gpt2'"));
}

TEST_CASE("gguf bad input: a required key is missing") {
  Tiny m;
  m.omit_keys = {"llama.block_count"};
  auto e = load_error<FormatError>(m);
  CHECK(e.field() == "llama.block_count");
  CHECK(e.reason() == "missing");
}

TEST_CASE("gguf bad input: a count that is zero") {
  Tiny m;
  m.omit_keys = {"llama.feed_forward_length"};
  m.extra_kvs = [](GgufBuilder& b) { b.kv_u32("llama.feed_forward_length", 0); };
  auto e = load_error<FormatError>(m);
  CHECK(e.field() == "llama.feed_forward_length");
  CHECK(contains(e.reason(), "positive"));
}

TEST_CASE("gguf bad input: kv heads that do not divide the heads") {
  Tiny m;
  m.omit_keys = {"llama.attention.head_count_kv"};
  m.extra_kvs = [](GgufBuilder& b) { b.kv_u32("llama.attention.head_count_kv", 3); };
  auto e = load_error<FormatError>(m);
  CHECK(e.field() == "llama.attention.head_count_kv");
  CHECK(contains(e.reason(), "not a multiple"));
}

TEST_CASE("gguf bad input: per-layer head counts that differ") {
  Tiny m;
  m.omit_keys = {"llama.attention.head_count_kv"};
  m.extra_kvs = [](GgufBuilder& b) {
    b.kv("llama.attention.head_count_kv", kArr,
         GgufBuilder::array_value(kI32, 2, GgufBuilder::raw<int32_t>(2) + GgufBuilder::raw<int32_t>(4)));
  };
  auto e = load_error<UnsupportedError>(m);
  CHECK(e.field() == "llama.attention.head_count_kv");
}

TEST_CASE("gguf bad input: partial rotary embeddings") {
  Tiny m;
  m.arch = "qwen3";  // head_dim from key_length (16), rotary part 8
  m.extra_kvs = [](GgufBuilder& b) { b.kv_u32("qwen3.rope.dimension_count", 8); };
  auto e = load_error<UnsupportedError>(m);
  CHECK(e.field() == "qwen3.rope.dimension_count");
  CHECK(contains(e.reason(), "partial rotary"));
}

TEST_CASE("gguf bad input: unsupported RoPE scaling type") {
  Tiny m;
  m.extra_kvs = [](GgufBuilder& b) {
    b.kv_str("llama.rope.scaling.type", "yarn");
    b.kv("llama.rope.scaling.factor", kF32v, GgufBuilder::raw(4.f));
  };
  auto e = load_error<UnsupportedError>(m);
  CHECK(e.field() == "llama.rope.scaling.type");
  CHECK(contains(e.reason(), "'yarn'"));
}

TEST_CASE("gguf bad input: RoPE scaling without a positive factor") {
  Tiny m;
  m.extra_kvs = [](GgufBuilder& b) { b.kv_str("llama.rope.scaling.type", "linear"); };
  auto e = load_error<FormatError>(m);
  CHECK(e.field() == "llama.rope.scaling.factor");
}

TEST_CASE("gguf config: llama.cpp's rope_freqs tensor divides the rotary frequencies (Llama 3.1+ files)") {
  // llama.cpp's converter writes llama3 scaling as these factors (conversion/llama.py): 1 for short
  // wavelengths, `factor` for long ones, a ramp between. Here factor 8 on the 8 frequencies of
  // head_dim 16, and the model's RoPE equals transformers' llama3 RoPE with those parameters.
  RopeScaling l3;
  l3.type = RopeScaling::Type::Llama3, l3.factor = 8.0, l3.low_freq_factor = 1.0, l3.high_freq_factor = 4.0;
  l3.original_max_position_embeddings = 64;
  const blocks::Rope plain(16, 10000.0, {}), want(16, 10000.0, l3);
  std::vector<float> factors(8);
  for (size_t i = 0; i < 8; ++i) factors[i] = plain.inv_freq()[i] / want.inv_freq()[i];
  Tiny m;
  m.extra_tensors = [&](GgufBuilder& b) {
    b.tensor("rope_freqs.weight", 0, {8}, std::string(reinterpret_cast<const char*>(factors.data()), 32));
  };
  TinyFile f(m);
  const Checkpoint ck = load_gguf(f.path);
  REQUIRE(ck.config.rope_scaling.type == RopeScaling::Type::Factors);
  REQUIRE(ck.config.rope_scaling.freq_factors.size() == 8);
  auto model = load_model(f.path);
  for (size_t i = 0; i < 8; ++i) CHECK(model->rope().inv_freq()[i] == doctest::Approx(want.inv_freq()[i]).epsilon(1e-6));
  CHECK(model->rope().inv_freq()[7] < plain.inv_freq()[7] / 7.9f);  // a long wavelength, scaled
  // saved with --weights q8 and loaded back: the same factors, the same logits
  auto q8 = load_model(f.path, LoadOptions{WeightFormat::Q8});
  TempDir out;
  save_model(*q8, out.path);
  auto back = load_model(out.path);
  CHECK(back->config().rope_scaling.freq_factors == ck.config.rope_scaling.freq_factors);
  const std::vector<int32_t> ids{1, 5, 9, 33, 2};
  CHECK(logits_of(*back, ids) == logits_of(*q8, ids));
}

TEST_CASE("gguf bad input: a rope_freqs tensor of the wrong size, or with a factor that is not positive") {
  for (int k = 0; k < 3; ++k) {
    CAPTURE(k);
    std::vector<float> v(k == 0 ? 4 : 8, 1.f);
    if (k == 1) v[3] = 0.f;
    if (k == 2) v[5] = NAN;
    Tiny m;
    m.extra_tensors = [&](GgufBuilder& b) {
      b.tensor("rope_freqs.weight", 0, {v.size()}, std::string(reinterpret_cast<const char*>(v.data()), 4 * v.size()));
    };
    auto e = load_error<FormatError>(m);
    CHECK(e.field() == "rope_freqs.weight");
  }
}

TEST_CASE("gguf bad input: vocab_size that disagrees with token_embd") {
  Tiny m;
  m.extra_kvs = [](GgufBuilder& b) { b.kv_u32("llama.vocab_size", 41); };
  auto e = load_error<FormatError>(m);
  CHECK(e.field() == "llama.vocab_size");
  CHECK(contains(e.reason(), "40 rows"));
}

TEST_CASE("gguf bad input: missing token_embd") {
  Built bl = build(Tiny{});  // the embedding renamed in the file's tensor infos
  const std::string from = "token_embd.weight", to = "token_embx.weight";
  bl.bytes.replace(bl.bytes.find(from), from.size(), to);
  TempDir d;
  fathom::test::write_file(d / "t.gguf", bl.bytes);
  auto e = expect_error<FormatError>([&] { load_gguf(d / "t.gguf"); });
  CHECK(e.field() == "token_embd.weight");
  CHECK(e.reason() == "missing tensor");
}

TEST_CASE("gguf bad input: a token id outside the vocabulary") {
  Tiny m;
  m.omit_keys = {"tokenizer.ggml.eos_token_id"};
  m.extra_kvs = [](GgufBuilder& b) { b.kv_u32("tokenizer.ggml.eos_token_id", 40); };
  auto e = load_error<FormatError>(m);
  CHECK(e.field() == "tokenizer.ggml.eos_token_id");
}

TEST_CASE("gguf bad input: a tensor fathom does not know") {
  Tiny m;
  m.extra_tensors = [](GgufBuilder& b) { b.tensor("blk.0.attn_rot_embd", 0, {4}, std::string(16, '\0')); };
  auto e = load_error<UnsupportedError>(m);
  CHECK(e.field() == "blk.0.attn_rot_embd");
}

TEST_CASE("gguf bad input: a block index beyond block_count") {
  Tiny m;
  m.extra_tensors = [](GgufBuilder& b) { b.tensor("blk.2.attn_norm.weight", 0, {64}, std::string(256, '\0')); };
  auto e = load_error<UnsupportedError>(m);
  CHECK(e.field() == "blk.2.attn_norm.weight");
}

TEST_CASE("gguf bad input: an attention output bias") {
  Tiny m;
  m.extra_tensors = [](GgufBuilder& b) { b.tensor("blk.0.attn_output.bias", 0, {64}, std::string(256, '\0')); };
  auto e = load_error<UnsupportedError>(m);
  CHECK(e.field() == "blk.0.attn_output.bias");
}

TEST_CASE("gguf bad input: a tensor type fathom does not read") {
  Tiny m;
  m.extra_tensors = [](GgufBuilder& b) { b.tensor("output.weight", 9, {64, 40}, std::string(40 * 2 * 40, '\0')); };  // Q8_1
  auto e = load_error<UnsupportedError>(m);
  CHECK(e.field() == "output.weight");
  CHECK(contains(e.reason(), "Q8_1"));
}

TEST_CASE("gguf bad input: a tensor with 3 dimensions") {
  Tiny m;
  m.extra_tensors = [](GgufBuilder& b) { b.tensor("output.weight", 0, {64, 40, 1}, std::string(64 * 40 * 4, '\0')); };
  auto e = load_error<FormatError>(m);
  CHECK(e.field() == "output.weight");
  CHECK(contains(e.reason(), "1 or 2 dimensions, got 3"));
}

TEST_CASE("gguf bad input: Q rows that are not whole heads") {
  Tiny m;
  m.omit_keys = {"llama.rope.dimension_count"};
  m.extra_kvs = [](GgufBuilder& b) { b.kv_u32("llama.attention.key_length", 8); };  // 4 x 8 != 64 rows
  auto e = load_error<FormatError>(m);
  CHECK(e.field() == "blk.0.attn_q.weight");
  CHECK(contains(e.reason(), "heads"));
}

TEST_CASE("gguf bad input: a non-finite Q8_0 scale") {
  Tiny m;
  m.edit_tensor = [](const std::string& name, std::string& bytes) {
    if (name == "blk.1.ffn_down.weight") bytes[34 * 3] = '\0', bytes[34 * 3 + 1] = '\x7c';  // +inf: 3 blocks a row, so row 1 block 0
  };
  auto e = load_error<FormatError>(m);
  CHECK(e.field() == "blk.1.ffn_down.weight");
  CHECK(contains(e.reason(), "non-finite"));
  CHECK(contains(e.reason(), "row 1, block 0"));
}

TEST_CASE("gguf bad input: a non-finite weight where Q8 is made") {
  Tiny m;
  m.edit_tensor = [](const std::string& name, std::string& bytes) {
    if (name == "blk.0.ffn_gate.weight") bytes[0] = '\0', bytes[1] = '\x7e';  // NaN scale of a Q4_1 block
  };
  auto e = load_error<FormatError>(m);
  CHECK(e.field() == "blk.0.ffn_gate.weight");
  CHECK(contains(e.reason(), "non-finite"));
}
