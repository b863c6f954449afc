#pragma once
// A decoder-only transformer of the Llama family tree (Llama, Mistral, Qwen2, Qwen3), composed
// from blocks and holding its weights as views into a checkpoint. The same code serves every
// family: what differs (q/k/v bias, q/k norm, sliding window, rope scaling, tied head) is in
// ModelConfig and in which tensors exist.
//
//   h_{-1} = E[token]                                   embed            [hidden]
//   for l in layers:
//     a    = h + Attn_l(RMSNorm_l^attn(h))               resid_mid
//     h    = a + MLP_l(RMSNorm_l^mlp(a))                 resid_post
//   logits = W_U · RMSNorm^final(h)                      [vocab]
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fathom/blocks/attention.hpp"
#include "fathom/blocks/mlp.hpp"
#include "fathom/blocks/rmsnorm.hpp"
#include "fathom/blocks/rope.hpp"
#include "fathom/core/error.hpp"
#include "fathom/core/weight_format.hpp"
#include "fathom/io/tensor_names.hpp"
#include "fathom/io/tensor_store.hpp"
#include "fathom/kernels/gemv_batch.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/weight_buffer.hpp"
#include "fathom/kernels/widen.hpp"
#include "fathom/core/model_config.hpp"
#include "fathom/model/q8_checkpoint.hpp"

namespace fathom {

struct LoadOptions {
  WeightFormat weights = WeightFormat::AsStored;
  // false (default): a matrix computed on in its stored format (f32 / bf16 / f16, and GGUF blocks
  // kept native) is copied out of the mapped checkpoint onto huge pages (kernels::WeightBuffer):
  // on the file's 4 KiB pages exact bf16 decode ran 4-9 % slower (docs/benchmarks.md, "Dense decode
  // rows a whole number of rows ahead"). true: compute on the mapping (no copy: half the resident
  // memory), whose speed then also depends on how the page cache holds the file (a file cached
  // hours earlier can lie scattered in physical memory: docs/benchmarks.md, "Zen 4: the peers
  // reading freshly written files").
  bool map_weights = false;
};

struct DecoderLayer {
  blocks::RMSNorm attn_norm;  // input_layernorm [hidden]
  blocks::Attention attn;
  blocks::RMSNorm mlp_norm;   // post_attention_layernorm [hidden]
  blocks::SwiGLU mlp;
};

// The model's own final norm and unembedding: turns any residual-stream vector into logits.
// Lenses and early-exit policies read out through this, never through family-specific code.
struct Readout {
  const blocks::RMSNorm* norm = nullptr;  // [hidden]
  kernels::MatrixView unembed;            // [vocab, hidden]

  size_t vocab() const { return unembed.rows; }
  size_t hidden() const { return unembed.cols; }
  // h: [n, hidden] -> normed: [n, hidden] (scratch, may alias h only if h may be destroyed),
  // logits: [n, vocab]; `how`: as blocks::Attention::project.
  void operator()(const float* h, size_t n, float* normed, float* logits,
                  kernels::Rows how = kernels::Rows::Gemm) const {
    (*norm)(h, normed, n);
    kernels::product(how, unembed, normed, n, logits);
  }
};

class Model {
 public:
  // Builds the model from a config and named tensors (Hugging Face names). Checks every tensor's
  // presence and shape against the config; `weights` must outlive the model unless converted.
  Model(ModelConfig config, std::shared_ptr<const io::TensorStore> weights, LoadOptions opts = {})
      : cfg_(std::move(config)), store_(std::move(weights)) {
    kernels::WeightArena arena;  // converted weights side by side on huge pages (kernels/weight_buffer.hpp)
    validate_config();
    const auto H = cfg_.hidden_size, hd = cfg_.head_dim, nh = cfg_.num_attention_heads,
               nkv = cfg_.num_key_value_heads, I = cfg_.intermediate_size, V = cfg_.vocab_size;
    rope_ = blocks::Rope(size_t(hd), cfg_.rope_theta, cfg_.rope_scaling);
    embed_ = embedding_tensor(V, H, opts);
    using io::HfTensor;
    final_norm_ = norm(io::hf_name(HfTensor::FinalNorm), H);
    layers_.resize(size_t(cfg_.num_hidden_layers));
    for (size_t i = 0; i < layers_.size(); ++i) {
      const auto name = [i](HfTensor t) { return io::hf_name(t, int64_t(i)); };
      auto& L = layers_[i];
      L.attn_norm = norm(name(HfTensor::AttnNorm), H);
      L.mlp_norm = norm(name(HfTensor::MlpNorm), H);
      auto& A = L.attn;
      A.hidden = size_t(H), A.n_heads = size_t(nh), A.n_kv_heads = size_t(nkv),
      A.head_dim = size_t(hd), A.sliding_window = cfg_.sliding_window, A.rope = &rope_;
      A.wq = matrix(name(HfTensor::Wq), nh * hd, H, opts);
      A.wk = matrix(name(HfTensor::Wk), nkv * hd, H, opts);
      A.wv = matrix(name(HfTensor::Wv), nkv * hd, H, opts);
      A.wo = matrix(name(HfTensor::Wo), H, nh * hd, opts);
      if (cfg_.attention_bias) {
        A.bq = load_vector(name(HfTensor::Bq), nh * hd);
        A.bk = load_vector(name(HfTensor::Bk), nkv * hd);
        A.bv = load_vector(name(HfTensor::Bv), nkv * hd);
      }
      if (cfg_.qk_norm) {
        A.q_norm = norm(name(HfTensor::QNorm), hd);
        A.k_norm = norm(name(HfTensor::KNorm), hd);
      }
      L.mlp.gate = matrix(name(HfTensor::Gate), I, H, opts);
      L.mlp.up = matrix(name(HfTensor::Up), I, H, opts);
      L.mlp.down = matrix(name(HfTensor::Down), H, I, opts);
    }
    const std::string head = io::hf_name(HfTensor::LmHead);
    const bool tied = cfg_.tie_word_embeddings || !store_->contains(head);
    if (tied && !cfg_.tie_word_embeddings)
      throw FormatError(store_->origin(), head,
                        "missing tensor (config says tie_word_embeddings=false)");
    readout_.norm = &final_norm_;
    readout_.unembed = tied ? matrix(embed_, opts) : matrix(head, V, H, opts);
    if (tied && readout_.unembed.dtype == embed_.dtype && readout_.unembed.data != embed_.data) {
      embed_.data = static_cast<const std::byte*>(readout_.unembed.data);  // its copy on huge pages: still one matrix
      embed_.mapped = false;
    }
  }

  Model(const Model&) = delete;  // layers hold pointers into the model (rope, norms)
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return cfg_; }
  size_t n_layers() const { return layers_.size(); }
  size_t hidden() const { return size_t(cfg_.hidden_size); }
  size_t vocab() const { return size_t(cfg_.vocab_size); }
  const DecoderLayer& layer(size_t i) const { return layers_[i]; }
  const blocks::Rope& rope() const { return rope_; }
  const Readout& readout() const { return readout_; }
  const blocks::RMSNorm& final_norm() const { return final_norm_; }
  // The token embedding as held ([vocab, hidden]: F32, BF16 or F16 as stored, Q8 in
  // kernels/quant.hpp's layout, or a GGUF block format held natively, kernels/quant4.hpp).
  const io::TensorView& embedding() const { return embed_; }

  // Every weight matrix, in a fixed order: per layer q, k, v, o, gate, up, down, then the
  // unembedding. Two models of one config list matching matrices at matching positions, so they
  // can be compared matrix by matrix (a quantised model against its original).
  std::vector<const kernels::MatrixView*> matrices() const {
    std::vector<const kernels::MatrixView*> all;
    for (auto& L : layers_)
      for (auto* w : {&L.attn.wq, &L.attn.wk, &L.attn.wv, &L.attn.wo, &L.mlp.gate, &L.mlp.up, &L.mlp.down})
        all.push_back(w);
    all.push_back(&readout_.unembed);
    return all;
  }

  // Bytes a matrix occupies as held (Q8: int8 values and f16 block scales, kernels/quant.hpp;
  // GGUF block formats as in the file, kernels/quant4.hpp).
  static size_t matrix_bytes(const kernels::MatrixView& m) {
    if (m.dtype == DType::Q8) return kernels::q8_bytes(m.rows, m.cols);
    if (kernels::is_gguf_block(m.dtype)) return kernels::gguf_block_matrix_bytes(m.dtype, m.rows, m.cols);
    return m.rows * m.cols * dtype_size(m.dtype);
  }

  // Bytes of weight matrices read per decoded token at full depth (for bandwidth bounds): every
  // matrix and one embedding row.
  size_t weight_bytes_per_token() const {
    const DType e = embed_.dtype;
    const size_t H = hidden();
    size_t b = kernels::is_gguf_block(e) ? H / kernels::gguf_block_elems(e) * kernels::gguf_block_bytes(e)  // the file's row
                                         : matrix_bytes({e, 1, H, nullptr});
    for (auto* m : matrices()) b += matrix_bytes(*m);
    return b;
  }

  // h[hidden] = E[token] in f32.
  void embed(int32_t token, float* h) const {
    if (token < 0 || token >= cfg_.vocab_size)
      throw UsageError("", "token", "id " + std::to_string(token) + " outside the vocabulary [0, " +
                                        std::to_string(cfg_.vocab_size) + ")");
    // the row's exact values in any format the embedding is held in (widen.hpp; as io::dequantize
    // gives them for a GGUF one)
    kernels::detail::widen_segment({embed_.dtype, vocab(), hidden(), embed_.data}, size_t(token), 0, hidden(), h);
  }

 private:
  void validate_config() const {
    auto bad = [&](const char* field, const std::string& why) {
      throw ConfigError(store_->origin(), field, why);
    };
    if (cfg_.hidden_size <= 0) bad("hidden_size", "must be positive");
    if (cfg_.num_hidden_layers <= 0) bad("num_hidden_layers", "must be positive");
    if (cfg_.num_attention_heads <= 0) bad("num_attention_heads", "must be positive");
    if (cfg_.num_key_value_heads <= 0 || cfg_.num_attention_heads % cfg_.num_key_value_heads)
      bad("num_key_value_heads", "must divide num_attention_heads");
    if (cfg_.head_dim <= 0 || cfg_.head_dim % 2) bad("head_dim", "must be positive and even");
    if (cfg_.intermediate_size <= 0) bad("intermediate_size", "must be positive");
    if (cfg_.vocab_size <= 0) bad("vocab_size", "must be positive");
    if (cfg_.rope_scaling.type == RopeScaling::Type::Factors &&
        cfg_.rope_scaling.freq_factors.size() != size_t(cfg_.head_dim / 2))
      bad("rope_scaling", std::to_string(cfg_.rope_scaling.freq_factors.size()) + " frequency factors for head_dim " +
                              std::to_string(cfg_.head_dim));
  }

  void check_float(const io::TensorView& t) const {
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
      throw UnsupportedError(t.file, t.name, "dtype " + std::string(dtype_name(t.dtype)) +
                                                 " (weights must be F32, BF16 or F16)");
  }

  std::vector<float> load_vector(const std::string& name, int64_t n) const {
    const auto& t = store_->get(name, {n});
    check_float(t);
    std::vector<float> out(static_cast<size_t>(n));
    kernels::MatrixView m{t.dtype, 1, size_t(n), t.data};
    for (size_t i = 0; i < out.size(); ++i) out[i] = m.at(0, i);
    return out;
  }

  blocks::RMSNorm norm(const std::string& name, int64_t n) const {
    return blocks::RMSNorm{load_vector(name, n), float(cfg_.rms_norm_eps)};
  }

  // A GGUF 4/6-bit matrix a loader holds in kernels/quant4.hpp's layout (io/gguf_weights.hpp).
  void check_block(const io::TensorView& t) const {
    const size_t rows = size_t(t.shape.at(0)), cols = size_t(t.shape.at(1));
    if (cols % kernels::gguf_block_elems(t.dtype) != 0 ||
        t.nbytes != kernels::gguf_block_matrix_bytes(t.dtype, rows, cols))
      throw FormatError(t.file, t.name, std::string(dtype_name(t.dtype)) + " matrix of " + std::to_string(t.nbytes) +
                                            " bytes does not match " + io::shape_string(t.shape));
  }

  // A Q8 tensor a loader already holds in kernels/quant.hpp's layout (GGUF Q8_0, io/gguf_weights.hpp).
  void check_q8(const io::TensorView& t) const {
    const size_t want = kernels::q8_bytes(size_t(t.shape.at(0)), size_t(t.shape.at(1)));
    if (t.nbytes != want)
      throw FormatError(t.file, t.name, "Q8 matrix of " + std::to_string(t.nbytes) + " bytes, expected " +
                                            std::to_string(want) + " for " + io::shape_string(t.shape));
  }

  // The token embedding [vocab, hidden]: F32/BF16/F16 as stored, Q8 (a GGUF Q8_0 embedding, or a
  // Q8 checkpoint's int8 values + scales unpacked once here and shared with a tied head), or a GGUF
  // 4/5/6-bit one as held (lookups widen a row exactly; a tied head multiplies it natively, as the
  // file's own bytes) -- or, with --weights q8, quantised to Q8 from its exact values.
  io::TensorView embedding_tensor(int64_t V, int64_t H, const LoadOptions& opts) {
    io::TensorView t = store_->get(io::hf_name(io::HfTensor::Embed), {V, H});
    if (kernels::is_gguf_block(t.dtype)) {
      check_block(t);
      if (opts.weights != WeightFormat::Q8) return t;
      auto q = std::make_shared<kernels::QuantizedMatrix>(
          kernels::quantize_q8_blocks({t.dtype, size_t(V), size_t(H), t.data}));
      owned_.push_back(q);
      t.dtype = DType::Q8;
      t.data = static_cast<const std::byte*>(q->view().data);
      t.nbytes = q->bytes();
    } else if (t.dtype == DType::I8) {
      auto q = std::make_shared<kernels::QuantizedMatrix>(
          q8_from_tensors(t, store_->get(t.name + kQ8ScaleSuffix)));
      owned_.push_back(q);
      t.dtype = DType::Q8;
      t.data = static_cast<const std::byte*>(q->view().data);
      t.nbytes = q->bytes();
    } else if (t.dtype == DType::Q8) {
      check_q8(t);
    } else {
      check_float(t);
    }
    return t;
  }

  kernels::MatrixView matrix(const std::string& name, int64_t rows, int64_t cols,
                             const LoadOptions& opts) {
    return matrix(store_->get(name, {rows, cols}), opts);
  }

  kernels::MatrixView matrix(const io::TensorView& t, const LoadOptions& opts) {
    const size_t rows = size_t(t.shape.at(0)), cols = size_t(t.shape.at(1));
    kernels::MatrixView m;
    if (t.dtype == DType::I8) {  // a Q8 checkpoint (model/q8_checkpoint.hpp)
      auto q = std::make_shared<kernels::QuantizedMatrix>(
          q8_from_tensors(t, store_->get(t.name + kQ8ScaleSuffix)));
      owned_.push_back(q);
      m = q->view();
    } else if (t.dtype == DType::Q8) {
      check_q8(t);
      m = {DType::Q8, rows, cols, t.data};
    } else if (kernels::is_gguf_block(t.dtype)) {
      check_block(t);
      m = {t.dtype, rows, cols, t.data};
    } else {
      check_float(t);
      m = {t.dtype, rows, cols, t.data};
    }
    if (opts.weights == WeightFormat::Q8 && m.dtype != DType::Q8) {
      auto q = std::make_shared<kernels::QuantizedMatrix>(kernels::quantize_q8_blocks(m));
      owned_.push_back(q);
      return q->view();
    }
    const DType want = opts.weights == WeightFormat::F32    ? DType::F32
                       : opts.weights == WeightFormat::BF16 ? DType::BF16
                                                            : m.dtype;
    if (want == m.dtype) {
      if (!t.mapped || opts.map_weights) return m;
      auto buf = std::make_shared<kernels::WeightBuffer>(matrix_bytes(m));  // the stored bytes, on huge pages
      std::memcpy(buf->data(), m.data, matrix_bytes(m));
      owned_.push_back(buf);
      return {m.dtype, m.rows, m.cols, buf->data()};
    }
    const size_t n = m.rows * m.cols;
    auto buf = std::make_shared<kernels::WeightBuffer>(n * dtype_size(want));
    owned_.push_back(buf);
    if (want == DType::F32) {
      float* f = buf->as<float>();
      for (size_t i = 0; i < n; ++i) f[i] = m.at(i / m.cols, i % m.cols);
    } else {
      uint16_t* h = buf->as<uint16_t>();
      for (size_t i = 0; i < n; ++i) h[i] = f32_to_bf16(m.at(i / m.cols, i % m.cols));
    }
    return {want, m.rows, m.cols, buf->data()};
  }

  ModelConfig cfg_;
  std::shared_ptr<const io::TensorStore> store_;
  std::vector<std::shared_ptr<const void>> owned_;  // converted weight buffers
  blocks::Rope rope_;
  io::TensorView embed_;          // [vocab, hidden]
  blocks::RMSNorm final_norm_;    // [hidden]
  std::vector<DecoderLayer> layers_;
  Readout readout_;
};

}  // namespace fathom
