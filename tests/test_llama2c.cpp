// llama2.c checkpoints: the two real 260K models, the Wq/Wk RoPE permutation (checked by an
// independent inverse mapping and by attention scores), synthetic files for the untied
// classifier, one test per malformed file, and load_checkpoint dispatch.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "fathom/core/shared_path.hpp"
#include "fathom/io/checkpoint.hpp"
#include "fathom/io/llama2c.hpp"
#include "io_test_util.hpp"

using namespace fathom;
using namespace fathom::io;
using fathom::test::contains;
using fathom::test::expect_error;
using fathom::test::TempDir;
using fathom::test::write_file;

namespace {

std::vector<float> read_floats(const std::filesystem::path& p, size_t float_offset, size_t count) {
  auto raw = fathom::test::read_file(p);
  REQUIRE(28 + (float_offset + count) * 4 <= raw.size());
  std::vector<float> out(count);
  std::memcpy(out.data(), raw.data() + 28 + float_offset * 4, count * 4);
  return out;
}

struct Header { int32_t dim, hidden, layers, heads, kv, vocab, seq; };

// Float count of everything a header implies, and a file whose float k holds the value k.
size_t float_count(const Header& h) {
  size_t hs = size_t(h.dim / h.heads), V = size_t(std::abs(h.vocab)), D = size_t(h.dim), L = size_t(h.layers),
         KV = size_t(h.kv) * hs, H = size_t(h.hidden);
  return V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D + 3 * L * H * D + D +
         size_t(h.seq) * hs + (h.vocab < 0 ? V * D : 0);
}
std::string synthetic(const Header& h, long extra_floats = 0) {
  std::string s(reinterpret_cast<const char*>(&h), 28);
  const size_t n = size_t(long(float_count(h)) + extra_floats);
  for (size_t k = 0; k < n; ++k) {
    float f = float(k);
    s.append(reinterpret_cast<const char*>(&f), 4);
  }
  return s;
}

// RoPE on one head, llama2.c style (pairs 2i, 2i+1) or transformers style (i, i + hs/2).
std::vector<double> rope(const std::vector<double>& x, int pos, bool interleaved) {
  const size_t hs = x.size();
  std::vector<double> y(hs);
  for (size_t i = 0; i < hs / 2; ++i) {
    double freq = 1.0 / std::pow(10000.0, double(2 * i) / double(hs)), a = pos * freq;
    size_t p = interleaved ? 2 * i : i, q = interleaved ? 2 * i + 1 : i + hs / 2;
    y[p] = x[p] * std::cos(a) - x[q] * std::sin(a);
    y[q] = x[q] * std::cos(a) + x[p] * std::sin(a);
  }
  return y;
}

// Rows [row0, row0 + hs) of w [rows, cols] times x.
std::vector<double> head_proj(const float* w, size_t row0, size_t hs, size_t cols, const std::vector<double>& x) {
  std::vector<double> y(hs, 0.0);
  for (size_t r = 0; r < hs; ++r)
    for (size_t c = 0; c < cols; ++c) y[r] += double(w[(row0 + r) * cols + c]) * x[c];
  return y;
}

}  // namespace

TEST_CASE("llama2c: stories260K loads with Hugging Face names, shapes and config") {
  auto path = shared_file("models/stories260K/stories260K.bin");
  auto ck = load_llama2c(path);
  const auto& c = ck.config;
  CHECK(c.architecture == "llama2.c");
  CHECK(c.family == Family::Llama);
  CHECK(c.hidden_size == 64);
  CHECK(c.intermediate_size == 172);
  CHECK(c.num_hidden_layers == 5);
  CHECK(c.num_attention_heads == 8);
  CHECK(c.num_key_value_heads == 4);
  CHECK(c.head_dim == 8);
  CHECK(c.vocab_size == 512);
  CHECK(c.max_position_embeddings == 512);
  CHECK(c.tie_word_embeddings);
  CHECK(c.rms_norm_eps == 1e-5);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_ids == std::vector<int64_t>{2});
  auto& w = ck.weights;
  CHECK(w.size() == 2 + 5 * 9);
  CHECK_FALSE(w.contains("lm_head.weight"));
  w.get("model.embed_tokens.weight", {512, 64});
  w.get("model.norm.weight", {64});
  for (int l = 0; l < 5; ++l) {
    auto p = "model.layers." + std::to_string(l) + ".";
    w.get(p + "input_layernorm.weight", {64});
    w.get(p + "post_attention_layernorm.weight", {64});
    w.get(p + "self_attn.q_proj.weight", {64, 64});
    w.get(p + "self_attn.k_proj.weight", {32, 64});
    w.get(p + "self_attn.v_proj.weight", {32, 64});
    w.get(p + "self_attn.o_proj.weight", {64, 64});
    w.get(p + "mlp.gate_proj.weight", {172, 64});
    w.get(p + "mlp.up_proj.weight", {172, 64});
    w.get(p + "mlp.down_proj.weight", {64, 172});
  }
  // Unpermuted tensors are the file's bytes in place: embedding row 0, final norm.
  auto emb = read_floats(path, 0, 64);
  CHECK(std::memcmp(w.get("model.embed_tokens.weight").data, emb.data(), 64 * 4) == 0);
  const size_t D = 64, L = 5, KV = 32, H = 172, V = 512;
  size_t norm_off = V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D + 3 * L * H * D;
  auto norm = read_floats(path, norm_off, D);
  CHECK(std::vector<float>(w.get("model.norm.weight").as<float>().begin(), w.get("model.norm.weight").as<float>().end()) == norm);
  // w1 is gate, w3 is up, w2 is down (layer 2, first row of each).
  size_t w1 = V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D;
  CHECK(w.get("model.layers.2.mlp.gate_proj.weight").as<float>()[0] == read_floats(path, w1 + 2 * H * D, 1)[0]);
  CHECK(w.get("model.layers.2.mlp.down_proj.weight").as<float>()[0] == read_floats(path, w1 + L * H * D + 2 * D * H, 1)[0]);
  CHECK(w.get("model.layers.2.mlp.up_proj.weight").as<float>()[0] == read_floats(path, w1 + 2 * L * H * D + 2 * H * D, 1)[0]);
}

TEST_CASE("llama2c: Wq/Wk rows match an independent inverse of the RoPE permutation") {
  auto path = shared_file("models/stories260K/stories260K.bin");
  auto ck = load_llama2c(path);
  const size_t D = 64, L = 5, KV = 32, V = 512, hs = 8;
  const size_t wq_off = V * D + L * D, wk_off = wq_off + L * D * D;
  for (size_t layer : {size_t(0), size_t(3)}) {
    auto raw_q = read_floats(path, wq_off + layer * D * D, D * D);
    auto raw_k = read_floats(path, wk_off + layer * KV * D, KV * D);
    auto q = ck.weights.get("model.layers." + std::to_string(layer) + ".self_attn.q_proj.weight").as<float>();
    auto k = ck.weights.get("model.layers." + std::to_string(layer) + ".self_attn.k_proj.weight").as<float>();
    // llama2.c row s = (head, pair i, member j) lands at HF row head*hs + j*hs/2 + i.
    auto hf_row = [&](size_t s) { return (s / hs) * hs + (s % 2) * (hs / 2) + (s % hs) / 2; };
    for (size_t s : {0, 1, 2, 3, 7, 9, 30, 31, 63}) {
      for (size_t c = 0; c < D; ++c) CHECK(q[hf_row(s) * D + c] == raw_q[s * D + c]);
    }
    for (size_t s : {0, 1, 6, 13, 31})
      for (size_t c = 0; c < D; ++c) CHECK(k[hf_row(s) * D + c] == raw_k[s * D + c]);
    CHECK(q[1 * D] == raw_q[2 * D]);  // HF row 1 is llama2.c row 2 (pair 1, first member)
    CHECK(q[4 * D] == raw_q[1 * D]);  // HF row 4 = hs/2 is llama2.c row 1 (pair 0, second member)
  }
}

TEST_CASE("llama2c: permuted weights give the same attention scores under half-rotation RoPE") {
  auto path = shared_file("models/stories260K/stories260K.bin");
  auto ck = load_llama2c(path);
  const size_t D = 64, L = 5, KV = 32, V = 512, hs = 8, group = 2;
  const size_t layer = 1, wq_off = V * D + L * D, wk_off = wq_off + L * D * D;
  auto raw_q = read_floats(path, wq_off + layer * D * D, D * D);
  auto raw_k = read_floats(path, wk_off + layer * KV * D, KV * D);
  auto q = ck.weights.get("model.layers.1.self_attn.q_proj.weight").as<float>();
  auto k = ck.weights.get("model.layers.1.self_attn.k_proj.weight").as<float>();
  std::vector<double> x(D), y(D);
  for (size_t i = 0; i < D; ++i) { x[i] = std::sin(0.3 * double(i) + 1.0); y[i] = std::cos(0.7 * double(i)); }
  for (size_t h = 0; h < 8; ++h) {
    const size_t kvh = h / group;
    auto s_llama2c = [&] {
      auto qa = rope(head_proj(raw_q.data(), h * hs, hs, D, x), 9, true);
      auto ka = rope(head_proj(raw_k.data(), kvh * hs, hs, D, y), 4, true);
      double s = 0; for (size_t i = 0; i < hs; ++i) s += qa[i] * ka[i];
      return s;
    }();
    auto s_hf = [&] {
      auto qa = rope(head_proj(q.data(), h * hs, hs, D, x), 9, false);
      auto ka = rope(head_proj(k.data(), kvh * hs, hs, D, y), 4, false);
      double s = 0; for (size_t i = 0; i < hs; ++i) s += qa[i] * ka[i];
      return s;
    }();
    CHECK(s_hf == doctest::Approx(s_llama2c).epsilon(1e-12));
    // And the unpermuted weights with half rotation would not match (the test can fail).
    auto s_wrong = [&] {
      auto qa = rope(head_proj(raw_q.data(), h * hs, hs, D, x), 9, false);
      auto ka = rope(head_proj(raw_k.data(), kvh * hs, hs, D, y), 4, false);
      double s = 0; for (size_t i = 0; i < hs; ++i) s += qa[i] * ka[i];
      return s;
    }();
    CHECK(std::abs(s_wrong - s_llama2c) > 1e-6);
  }
}

TEST_CASE("llama2c: aidreams260K loads (4 layers, 4 heads, seq 128)") {
  auto ck = load_checkpoint(shared_file("models/aidreams260K/aidreams260K.bin"));
  CHECK(ck.config.num_hidden_layers == 4);
  CHECK(ck.config.num_attention_heads == 4);
  CHECK(ck.config.num_key_value_heads == 4);
  CHECK(ck.config.head_dim == 16);
  CHECK(ck.config.max_position_embeddings == 128);
  CHECK(ck.config.tie_word_embeddings);
  CHECK(ck.weights.size() == 2 + 4 * 9);
  ck.weights.get("model.layers.3.self_attn.k_proj.weight", {64, 64});
}

TEST_CASE("llama2c: negative vocab_size means an unshared classifier (lm_head)") {
  TempDir d;
  Header h{8, 12, 2, 2, 1, -10, 4};
  write_file(d / "m.bin", synthetic(h));
  auto ck = load_llama2c(d / "m.bin");
  CHECK_FALSE(ck.config.tie_word_embeddings);
  CHECK(ck.config.vocab_size == 10);
  CHECK(ck.config.num_key_value_heads == 1);
  const auto& head = ck.weights.get("lm_head.weight", {10, 8});
  // wcls is the last array: its first float is the float count before it.
  CHECK(head.as<float>()[0] == float(float_count(h) - 80));
  CHECK(ck.weights.get("model.embed_tokens.weight").as<float>()[5] == 5.0f);
  // k_proj [kv*hs = 4, 8]: HF row 1 = llama2.c row 2 (pair 1, first member).
  auto k = ck.weights.get("model.layers.0.self_attn.k_proj.weight", {4, 8}).as<float>();
  const float wk0 = float(10 * 8 + 2 * 8 + 2 * 64);
  CHECK(k[0] == wk0);
  CHECK(k[8] == wk0 + 16);
  CHECK(k[16] == wk0 + 8);
}

TEST_CASE("llama2c bad input: file ends inside the header names the field") {
  TempDir d;
  Header h{8, 12, 2, 2, 1, 10, 4};
  write_file(d / "m.bin", synthetic(h).substr(0, 10));
  auto e = expect_error<FormatError>([&] { load_llama2c(d / "m.bin"); });
  CHECK(e.file() == (d / "m.bin").string());
  CHECK(e.field() == "n_layers");
  CHECK(contains(e.reason(), "10 bytes"));
  write_file(d / "m.bin", "");
  CHECK(expect_error<FormatError>([&] { load_llama2c(d / "m.bin"); }).field() == "dim");
}

TEST_CASE("llama2c bad input: file ends inside a tensor names the tensor") {
  TempDir d;
  Header h{8, 12, 2, 2, 1, 10, 4};
  // token_embedding 80 floats, rms_att 16, then wq: cut 3 floats into wq.
  write_file(d / "m.bin", synthetic(h).substr(0, 28 + (80 + 16 + 3) * 4));
  auto e = expect_error<FormatError>([&] { load_llama2c(d / "m.bin"); });
  CHECK(e.field() == "wq (model.layers.*.self_attn.q_proj.weight)");
  CHECK(contains(e.reason(), "inside this tensor"));
  write_file(d / "m.bin", synthetic(h, -1));  // one float short: inside freq_cis_imag
  CHECK(contains(expect_error<FormatError>([&] { load_llama2c(d / "m.bin"); }).field(), "freq_cis_imag"));
  Header u{8, 12, 2, 2, 1, -10, 4};  // unshared classifier missing entirely
  write_file(d / "m.bin", synthetic(u, -80));
  CHECK(contains(expect_error<FormatError>([&] { load_llama2c(d / "m.bin"); }).field(), "wcls"));
}

TEST_CASE("llama2c bad input: trailing bytes after the last tensor") {
  TempDir d;
  write_file(d / "m.bin", synthetic(Header{8, 12, 2, 2, 1, 10, 4}, 2));
  auto e = expect_error<FormatError>([&] { load_llama2c(d / "m.bin"); });
  CHECK(contains(e.reason(), "8 bytes after the last tensor"));
}

TEST_CASE("llama2c bad input: impossible header values") {
  TempDir d;
  auto check = [&](Header h, const std::string& field) {
    std::string s(reinterpret_cast<const char*>(&h), 28);
    s.append(64, '\0');
    write_file(d / "m.bin", s);
    auto e = expect_error<FormatError>([&] { load_llama2c(d / "m.bin"); });
    CHECK(e.field() == field);
  };
  check(Header{0, 12, 2, 2, 1, 10, 4}, "dim");
  check(Header{8, -12, 2, 2, 1, 10, 4}, "hidden_dim");
  check(Header{8, 12, 0, 2, 1, 10, 4}, "n_layers");
  check(Header{8, 12, 2, 2, 1, 0, 4}, "vocab_size");
  check(Header{8, 12, 2, 2, 1, 10, 0}, "seq_len");
  check(Header{12, 12, 2, 4, 3, 10, 4}, "n_kv_heads");  // 4 heads, 3 kv heads
  check(Header{12, 12, 2, 4, 2, 10, 4}, "n_heads");     // head size 3 is odd
  // Huge dims must fail on size, not overflow into a small allocation.
  check(Header{2147483644, 2147483646, 2147483647, 2, 1, 2147483647, 4}, "token_embedding (model.embed_tokens.weight)");
  check(Header{2147483644, 2147483646, 2147483647, 2, 1, 1, 4}, "token_embedding (model.embed_tokens.weight)");
}

TEST_CASE("checkpoint: a .bin goes to the llama2.c loader") {
  auto ck = load_checkpoint(shared_file("models/stories260K/stories260K.bin"));
  CHECK(ck.config.architecture == "llama2.c");
  CHECK(ck.weights.contains("model.layers.4.mlp.down_proj.weight"));
}

// ---- tok512.bin tokenizer ------------------------------------------------------------------

#include <fstream>
#include <map>
#include <sstream>

#include "fathom/tokenizer/llama2c_tokenizer.hpp"

using fathom::tok::Llama2cTokenizer;

namespace {

Llama2cTokenizer stories_tok() { return Llama2cTokenizer::load(shared_file("models/stories260K/tok512.bin"), 512); }

// run.c's encode, transcribed literally (quadratic rescans), as the reference for the fast one.
std::vector<int32_t> runc_encode(const Llama2cTokenizer& t, const std::string& text, bool bos) {
  std::map<std::string, int32_t> vocab;  // run.c's sorted vocab + bsearch
  for (size_t i = 0; i < t.vocab_size(); ++i) vocab.emplace(t.token_text(int32_t(i)), int32_t(i));
  auto lookup = [&](const std::string& s) -> int32_t {
    auto it = vocab.find(s);
    return it == vocab.end() ? -1 : it->second;
  };
  std::vector<int32_t> tokens;
  if (bos) tokens.push_back(1);
  if (!text.empty()) tokens.push_back(lookup(" "));
  std::string buf;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((text[i] & 0xC0) != 0x80) buf.clear();
    buf += text[i];
    if (i + 1 < text.size() && (text[i + 1] & 0xC0) == 0x80 && buf.size() < 4) continue;
    int32_t id = lookup(buf);
    if (id != -1) tokens.push_back(id);
    else for (unsigned char b : buf) tokens.push_back(int32_t(b) + 3);
    buf.clear();
  }
  while (true) {
    float best_score = -1e10f;
    int32_t best_id = -1, best_idx = -1;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
      int32_t id = lookup(t.token_text(tokens[i]) + t.token_text(tokens[i + 1]));
      if (id != -1 && t.score(id) > best_score) { best_score = t.score(id); best_id = id; best_idx = int32_t(i); }
    }
    if (best_idx == -1) break;
    tokens[size_t(best_idx)] = best_id;
    tokens.erase(tokens.begin() + best_idx + 1);
  }
  return tokens;
}

std::string slurp(const std::filesystem::path& p) { return fathom::test::read_file(p); }

}  // namespace

TEST_CASE("llama2c tokenizer: hand-verified encodings of stories260K tok512.bin") {
  auto t = stories_tok();
  CHECK(t.vocab_size() == 512);
  CHECK(t.max_token_length() == 7);
  CHECK(t.bos_id() == 1);
  CHECK(t.eos_ids() == std::vector<int32_t>{2});
  CHECK(t.token_text(403) == " Once");
  CHECK(t.token_text(3) == "<0x00>");
  CHECK(t.encode("Once upon a time") == std::vector<int32_t>{1, 403, 407, 261, 378});
  CHECK(t.encode("Once upon a time", false) == std::vector<int32_t>{403, 407, 261, 378});
  CHECK(t.encode("Hello, world!") == std::vector<int32_t>{1, 346, 306, 414, 432, 263, 304, 341, 443});
  CHECK(t.encode("") == std::vector<int32_t>{1});
  CHECK(t.encode("", false).empty());
  // é is a piece; ☃ and 🦄 are not and fall back to their UTF-8 bytes (id = byte + 3).
  CHECK(t.encode("Lily's cat é ☃ 🦄") == std::vector<int32_t>{1, 317, 439, 419, 280, 294, 410, 485, 410, 229, 155,
                                                              134, 410, 243, 162, 169, 135});
  CHECK(t.encode("  two  spaces\nnewline") ==
        std::vector<int32_t>{1, 410, 410, 259, 424, 414, 410, 262, 427, 412, 331, 419, 13, 416, 411, 424, 421, 271, 411});
}

TEST_CASE("llama2c tokenizer: fast merge equals run.c's quadratic merge on real text") {
  auto t = stories_tok();
  auto aid = Llama2cTokenizer::load(shared_file("models/aidreams260K/tok512.bin"), 512);
  std::istringstream lines(slurp(shared_file("data/tinystories/TinyStories-valid-head30KB.txt")));
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    ++n;
    line = line.substr(0, 400);  // the reference is quadratic
    CHECK(t.encode(line) == runc_encode(t, line, true));
    CHECK(aid.encode(line, false) == runc_encode(aid, line, false));
  }
  CHECK(n >= 10);
  const std::string odd = "\xff\xfe bad \xc3 utf8 \xe2\x98 end \xf0\x9f\xa6\x84\xf0";
  CHECK(t.encode(odd) == runc_encode(t, odd, true));
}

TEST_CASE("llama2c tokenizer: decode(encode(text)) round trips whole documents and raw bytes") {
  auto t = stories_tok();
  const auto story = slurp(shared_file("data/tinystories/TinyStories-valid-head30KB.txt"));
  auto ids = t.encode(story);
  CHECK(ids.size() * 10 < story.size() * 6);  // merges happened (~2 bytes per token)
  CHECK(t.decode(ids) == story);
  std::string wiki = slurp(shared_file("data/wikitext2/wikitext-2-raw-test.txt")).substr(0, 20000);
  CHECK(t.decode(t.encode(wiki)) == wiki);
  const std::string bytes = std::string("\x00\x01 \xff\x80 ok", 8);
  CHECK(t.decode(t.encode(bytes)) == bytes);
  // Without BOS the dummy-prefix space stays.
  CHECK(t.decode(t.encode("Once", false)) == " Once");
}

TEST_CASE("llama2c tokenizer: decode details (BOS/EOS, space after BOS, byte pieces, unk)") {
  auto t = stories_tok();
  const std::vector<int32_t> ids{1, 403, 2, 403, 13, 1, 410, 0};
  // BOS, EOS: nothing; a space piece right after BOS loses its space; <unk> only kept by default.
  CHECK(t.decode(ids) == "Once Once\n<unk>");
  CHECK(t.decode(ids, true) == "Once Once\n");
  CHECK(t.decode(std::vector<int32_t>{1, 403, 407}) == "Once upon");
  CHECK(t.decode(std::vector<int32_t>{1, 13}) == "\n");  // only a leading space is stripped
  auto e = expect_error<TokenizerError>([&] { t.decode(std::vector<int32_t>{1, 512}); });
  CHECK(e.field() == "token id");
  CHECK(contains(e.reason(), "id 512 at position 1"));
  expect_error<TokenizerError>([&] { t.decode(std::vector<int32_t>{-1}); });
  expect_error<TokenizerError>([&] { t.token_text(600); });
}

TEST_CASE("llama2c tokenizer bad input: truncated and malformed files") {
  TempDir d;
  const auto good = slurp(shared_file("models/stories260K/tok512.bin"));
  auto err = [&](const std::string& bytes, size_t vocab = 512) {
    write_file(d / "tok.bin", bytes);
    return expect_error<TokenizerError>([&] { Llama2cTokenizer::load(d / "tok.bin", vocab); });
  };
  auto h = err(good.substr(0, 2));
  CHECK(h.field() == "max_token_length");
  CHECK(h.file() == (d / "tok.bin").string());
  CHECK(err(good.substr(0, 6)).field() == "token 0");  // inside the first score
  CHECK(contains(err(good.substr(0, 10)).reason(), "inside the length"));
  CHECK(contains(err(good.substr(0, 14)).reason(), "inside the piece"));
  auto last = err(good.substr(0, good.size() - 1));
  CHECK(last.field() == "token 511");
  // More tokens asked for than the file holds; fewer: trailing bytes.
  CHECK(err(good, 513).field() == "token 512");
  CHECK(contains(err(good, 500).reason(), "more tokens than the model's vocabulary"));
  std::string neg = good;
  int32_t minus = -3;
  std::memcpy(neg.data() + 8, &minus, 4);
  CHECK(contains(err(neg).reason(), "negative length"));
  std::string big = good;
  int32_t zero = 0;
  std::memcpy(big.data(), &zero, 4);
  CHECK(err(big).field() == "max_token_length");
  int32_t one = 1;
  std::memcpy(big.data(), &one, 4);
  CHECK(contains(err(big).reason(), "exceeds max_token_length"));
  expect_error<IoError>([&] { Llama2cTokenizer::load(d / "missing.bin", 512); });
  expect_error<UsageError>([&] { Llama2cTokenizer::load(shared_file("models/stories260K/tok512.bin"), 0); });
}
