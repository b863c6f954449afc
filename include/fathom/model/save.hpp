#pragma once
// Writes a Model as a Hugging Face folder (config.json + model.safetensors) holding every tensor in
// the form the model holds it: matrices as F32, BF16, F16 or Q8 (int8 values + f16 block scales,
// model/q8_checkpoint.hpp), norms and biases as F32, the embedding as held (a Q8 one like a Q8
// matrix). Loading the folder gives the same model, logits equal bit for bit: a model quantised
// once at load can be saved and reloaded without quantising again.
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/io/config.hpp"
#include "fathom/io/safetensors.hpp"
#include "fathom/io/tensor_names.hpp"
#include "fathom/model/model.hpp"
#include "fathom/model/q8_checkpoint.hpp"

namespace fathom {

namespace detail {

inline void add_vector(std::vector<io::TensorSource>& out, std::string name, const std::vector<float>& v) {
  if (!v.empty())
    out.push_back(io::bytes_source(std::move(name), DType::F32, {int64_t(v.size())}, v.data(), v.size() * 4));
}

inline void add_matrix(std::vector<io::TensorSource>& out, const std::string& name,
                       const kernels::MatrixView& m) {
  if (m.dtype == DType::Q8) {
    for (auto& s : q8_tensor_sources(name, m)) out.push_back(std::move(s));
    return;
  }
  if (kernels::is_gguf_block(m.dtype))  // a GGUF model held natively: no safetensors form for it
    throw UnsupportedError("", name, "saving " + std::string(dtype_name(m.dtype)) +
                                         " weights (load the GGUF with --weights q8, bf16 or f32 to save it)");
  out.push_back(io::bytes_source(name, m.dtype, {int64_t(m.rows), int64_t(m.cols)}, m.data,
                             m.rows * m.cols * dtype_size(m.dtype)));
}

}  // namespace detail

inline void save_model(const Model& model, const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir.string(), "", "cannot create folder: " + ec.message());

  ModelConfig cfg = model.config();
  std::vector<io::TensorSource> t;
  using io::HfTensor;
  const io::TensorView& E = model.embedding();
  const std::string embed = io::hf_name(HfTensor::Embed);
  if (E.dtype == DType::Q8 || kernels::is_gguf_block(E.dtype))  // Q8 as every Q8 matrix; a native one refused
    detail::add_matrix(t, embed, {E.dtype, size_t(E.shape.at(0)), size_t(E.shape.at(1)), E.data});
  else
    t.push_back(io::bytes_source(embed, E.dtype, E.shape, E.data, E.nbytes));
  for (size_t i = 0; i < model.n_layers(); ++i) {
    const auto name = [i](HfTensor k) { return io::hf_name(k, int64_t(i)); };
    const DecoderLayer& L = model.layer(i);
    const auto& A = L.attn;
    detail::add_vector(t, name(HfTensor::AttnNorm), L.attn_norm.weight);
    detail::add_vector(t, name(HfTensor::MlpNorm), L.mlp_norm.weight);
    detail::add_matrix(t, name(HfTensor::Wq), A.wq);
    detail::add_matrix(t, name(HfTensor::Wk), A.wk);
    detail::add_matrix(t, name(HfTensor::Wv), A.wv);
    detail::add_matrix(t, name(HfTensor::Wo), A.wo);
    detail::add_vector(t, name(HfTensor::Bq), A.bq);
    detail::add_vector(t, name(HfTensor::Bk), A.bk);
    detail::add_vector(t, name(HfTensor::Bv), A.bv);
    detail::add_vector(t, name(HfTensor::QNorm), A.q_norm.weight);
    detail::add_vector(t, name(HfTensor::KNorm), A.k_norm.weight);
    detail::add_matrix(t, name(HfTensor::Gate), L.mlp.gate);
    detail::add_matrix(t, name(HfTensor::Up), L.mlp.up);
    detail::add_matrix(t, name(HfTensor::Down), L.mlp.down);
  }
  detail::add_vector(t, io::hf_name(HfTensor::FinalNorm), model.final_norm().weight);
  // A head that is the embedding itself stays tied; one held in another form (quantised,
  // converted) is written out and the saved config is untied.
  const kernels::MatrixView& U = model.readout().unembed;
  cfg.tie_word_embeddings = cfg.tie_word_embeddings && U.data == E.data;
  if (!cfg.tie_word_embeddings) detail::add_matrix(t, io::hf_name(HfTensor::LmHead), U);

  bool q8 = false;
  for (const auto& s : t) q8 = q8 || s.dtype == DType::I8;
  auto config = io::config_to_json(cfg);
  std::map<std::string, std::string> meta{{"format", "pt"}};
  if (q8) {
    // transformers refuses an unknown quant_method instead of reading int8 values as weights
    config["quantization_config"] = {{"quant_method", "fathom_q8"}, {"bits", 8}, {"group_size", 32},
                                     {"symmetric", true}, {"scale_dtype", "float16"},
                                     {"scale_suffix", kQ8ScaleSuffix}};
    meta["fathom.q8"] = "W = q * scale[:, c / 32]; q int8 in [-127, 127], scale f16 (<name>_scale)";
  }
  io::write_safetensors(dir / "model.safetensors", t, meta);
  const fs::path cfg_path = dir / "config.json";
  std::ofstream out(cfg_path, std::ios::trunc);
  out << config.dump(2) << "\n";
  out.flush();
  if (!out) throw IoError(cfg_path.string(), "", "write failed");
}

}  // namespace fathom
