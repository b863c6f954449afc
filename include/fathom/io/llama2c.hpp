#pragma once
// llama2.c checkpoints (the legacy "version 0" .bin of karpathy/llama2.c run.c): seven int32
// header fields, then f32 arrays, each holding all layers back to back:
//   token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv*hs, dim],
//   wv [L, kv*hs, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
//   w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim],
//   freq_cis_real, freq_cis_imag [seq_len, hs/2] (unused: RoPE is recomputed),
//   wcls [vocab, dim] only when the header's vocab_size is negative (unshared classifier).
// Tensors are exposed under Hugging Face Llama names, so one forward pass serves both formats.
// llama2.c rotates interleaved pairs (2i, 2i+1) of each head while transformers rotates halves
// (i, i + hs/2); the rows of Wq and Wk are permuted here exactly as transformers'
// convert_llama_weights_to_hf does, and everything else is a zero-copy view of the file.
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/io/checkpoint_data.hpp"
#include "fathom/io/mmap.hpp"
#include "fathom/io/tensor_names.hpp"
#include "fathom/io/tensor_store.hpp"
#include "fathom/core/model_config.hpp"

namespace fathom::io {

namespace detail {

// Rows of a [n_heads * hs, cols] projection from interleaved-pair order to rotate-half order:
// dst row (h, j, i) = src row (h, i, j), i.e. w.view(n_heads, hs/2, 2, cols).transpose(1, 2).
inline std::vector<std::byte> permute_rope_rows(const float* src, int64_t n_heads, int64_t hs, int64_t cols) {
  std::vector<std::byte> out(size_t(n_heads * hs * cols) * sizeof(float));
  auto* dst = reinterpret_cast<float*>(out.data());
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < hs / 2; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::memcpy(dst + (h * hs + j * (hs / 2) + i) * cols, src + (h * hs + 2 * i + j) * cols,
                    size_t(cols) * sizeof(float));
  return out;
}

}  // namespace detail

// A llama2.c checkpoint held in `bytes` (a mapped file, or memory for tests and fuzzing); `file`
// names it in errors. Tensors view `bytes` (Wq/Wk are permuted copies): `map`, the mapping
// `bytes` lie in, stays alive with the store, or the caller keeps `bytes` alive as long as the
// checkpoint.
inline Checkpoint parse_llama2c(std::span<const std::byte> bytes, const std::string& file,
                                std::shared_ptr<const MappedFile> map = {}) {
  const std::byte* const data = bytes.data();
  const size_t size = bytes.size();

  static constexpr std::array<const char*, 7> kFields = {"dim", "hidden_dim", "n_layers", "n_heads",
                                                         "n_kv_heads", "vocab_size", "seq_len"};
  if (size < 28)
    throw FormatError(file, kFields[size / 4],
                      "file is " + std::to_string(size) + " bytes and ends inside the 28-byte header");
  std::array<int32_t, 7> h{};
  std::memcpy(h.data(), data, 28);
  const auto [dim, hidden, n_layers, n_heads, n_kv, vocab_signed, seq_len] = h;
  for (size_t i = 0; i < 7; ++i)
    if (i != 5 && h[i] <= 0)
      throw FormatError(file, kFields[i], "must be positive, got " + std::to_string(h[i]));
  if (vocab_signed == 0 || vocab_signed == INT32_MIN)
    throw FormatError(file, "vocab_size", "invalid value " + std::to_string(vocab_signed));
  if (n_heads % n_kv != 0)
    throw FormatError(file, "n_kv_heads", "n_heads " + std::to_string(n_heads) +
                                              " is not a multiple of n_kv_heads " + std::to_string(n_kv));
  if (dim % n_heads != 0 || (dim / n_heads) % 2 != 0)
    throw FormatError(file, "n_heads", "dim " + std::to_string(dim) + " / n_heads " +
                                           std::to_string(n_heads) + " is not an even head size");
  const bool shared = vocab_signed > 0;
  const int64_t vocab = shared ? vocab_signed : -int64_t(vocab_signed);
  const int64_t hs = dim / n_heads, kv_dim = int64_t(n_kv) * hs, L = n_layers;
  using u128 = unsigned __int128;

  // Walks the file. Counts are products of up to three int32s (93 bits), so they are computed in
  // 128 bits: a hostile header fails the size check instead of wrapping around.
  size_t offset = 28;
  auto take = [&](const char* name, const std::string& hf, unsigned __int128 count) -> const float* {
    const unsigned __int128 need = count * sizeof(float);
    if (need > size - offset)
      throw FormatError(file, std::string(name) + " (" + hf + ")",
                        "file ends at byte " + std::to_string(size) + ", inside this tensor (bytes [" +
                            std::to_string(offset) + ", " +
                            (need >> 64 ? std::string("beyond 2^64") : std::to_string(uint64_t(need) + offset)) +
                            ") per the header)");
    auto* p = reinterpret_cast<const float*>(data + offset);
    offset += size_t(need);
    return p;
  };
  // The file holds each per-layer tensor for all layers at once: messages name them "model.layers.*.".
  auto all = [](HfTensor t) { return hf_layer_name(t, "*"); };
  const float* emb = take("token_embedding", hf_name(HfTensor::Embed), u128(vocab) * dim);
  const float* rms_att = take("rms_att", all(HfTensor::AttnNorm), u128(L) * dim);
  const float* wq = take("wq", all(HfTensor::Wq), u128(L) * dim * dim);
  const float* wk = take("wk", all(HfTensor::Wk), u128(L) * kv_dim * dim);
  const float* wv = take("wv", all(HfTensor::Wv), u128(L) * kv_dim * dim);
  const float* wo = take("wo", all(HfTensor::Wo), u128(L) * dim * dim);
  const float* rms_ffn = take("rms_ffn", all(HfTensor::MlpNorm), u128(L) * dim);
  const float* w1 = take("w1", all(HfTensor::Gate), u128(L) * hidden * dim);
  const float* w2 = take("w2", all(HfTensor::Down), u128(L) * dim * hidden);
  const float* w3 = take("w3", all(HfTensor::Up), u128(L) * hidden * dim);
  const float* rms_final = take("rms_final", hf_name(HfTensor::FinalNorm), dim);
  take("freq_cis_real", "unused", u128(seq_len) * hs / 2);
  take("freq_cis_imag", "unused", u128(seq_len) * hs / 2);
  const float* wcls = shared ? nullptr : take("wcls", hf_name(HfTensor::LmHead), u128(vocab) * dim);
  if (offset != size)
    throw FormatError(file, "", std::to_string(size - offset) +
                                    " bytes after the last tensor (the header describes a " +
                                    std::to_string(offset) + "-byte file)");

  Checkpoint ck;
  ck.path = file;
  auto& c = ck.config;
  c.architecture = "llama2.c";
  c.family = Family::Llama;
  c.hidden_size = dim;
  c.num_hidden_layers = n_layers;
  c.num_attention_heads = n_heads;
  c.num_key_value_heads = n_kv;
  c.head_dim = hs;
  c.intermediate_size = hidden;
  c.vocab_size = vocab;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = seq_len;
  c.tie_word_embeddings = shared;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.torch_dtype = DType::F32;

  auto& w = ck.weights;
  w.set_origin(file);
  if (map) w.keep_alive(map);
  auto view = [&](std::string name, std::vector<int64_t> shape, const float* p) {
    TensorView v{std::move(name), DType::F32, std::move(shape), reinterpret_cast<const std::byte*>(p), 0, file,
                 /*mapped=*/map != nullptr};
    v.nbytes = v.numel() * sizeof(float);
    w.add(std::move(v));
  };
  view(hf_name(HfTensor::Embed), {vocab, dim}, emb);
  for (int64_t l = 0; l < L; ++l) {
    const auto name = [l](HfTensor t) { return hf_name(t, l); };
    view(name(HfTensor::AttnNorm), {dim}, rms_att + l * dim);
    w.add_owned(name(HfTensor::Wq), DType::F32, {dim, dim},
                detail::permute_rope_rows(wq + l * dim * dim, n_heads, hs, dim), file);
    w.add_owned(name(HfTensor::Wk), DType::F32, {kv_dim, dim},
                detail::permute_rope_rows(wk + l * kv_dim * dim, n_kv, hs, dim), file);
    view(name(HfTensor::Wv), {kv_dim, dim}, wv + l * kv_dim * dim);
    view(name(HfTensor::Wo), {dim, dim}, wo + l * dim * dim);
    view(name(HfTensor::MlpNorm), {dim}, rms_ffn + l * dim);
    view(name(HfTensor::Gate), {hidden, dim}, w1 + l * hidden * dim);
    view(name(HfTensor::Down), {dim, hidden}, w2 + l * dim * hidden);
    view(name(HfTensor::Up), {hidden, dim}, w3 + l * hidden * dim);
  }
  view(hf_name(HfTensor::FinalNorm), {dim}, rms_final);
  if (wcls) view(hf_name(HfTensor::LmHead), {vocab, dim}, wcls);
  return ck;
}

inline Checkpoint load_llama2c(const std::filesystem::path& path) {
  auto map = MappedFile::open(path);
  Checkpoint ck = parse_llama2c(map->bytes(), path.string(), map);
  ck.path = path;
  return ck;
}

}  // namespace fathom::io
