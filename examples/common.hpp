#pragma once
// What every example program shares: default model paths under ../shared, model + tokenizer
// loading, thread count, weight format, prompt parsing and reporting of fathom errors.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/id_list.hpp"
#include "fathom/core/shared_path.hpp"
#include "fathom/kernels/bf16dot.hpp"
#include "fathom/model/kv_cache.hpp"
#include "fathom/model/load.hpp"
#include "fathom/tokenizer/any_tokenizer.hpp"

namespace examples {

inline std::string default_model() {
  return (fathom::shared_dir() / "models" / "stories260K" / "stories260K.bin").string();
}

struct ModelArgs {
  std::string model = default_model();
  std::string tokenizer;  // empty: beside the model (tok512.bin) or in its folder
  std::string weights = "as-stored";
  std::string kv_cache = "f32";
  std::string activations = "f32";
  std::string prefill;  // empty: the library's default (exact; FATHOM_PREFILL=int8 changes it)
  bool map_weights = false;
  int threads = 0;

  // omp_threads = false: the program has its own --threads (eval: worker threads over items).
  void add(CLI::App& app, bool omp_threads = true) {
    app.add_option("-m,--model", model,
                   "llama2.c .bin, llama.cpp .gguf, or a Hugging Face folder / .safetensors (default: stories260K)");
    app.add_option("--tokenizer", tokenizer,
                   "tokenizer folder, .gguf or tok512.bin (default: beside the model, or a .gguf model's own)");
    app.add_option("--weights", weights, "weight format in memory: as-stored, f32, bf16, q8")
        ->check(CLI::IsMember({"as-stored", "f32", "bf16", "q8"}));
    app.add_option("--activations", activations,
                   "bf16: round activations to bf16 for bf16 weights (AVX512_BF16 vdpbf16ps, AMX tiles for prompts where present; inexact, opt-in)")
        ->check(CLI::IsMember({"f32", "bf16"}));
    app.add_option("--prefill", prefill,
                   "prompt products with Q8 / GGUF block weights: exact (default: f32 activations with the "
                   "weights' exact values, = the dequantised f32 model) or int8 (as decode: the same bits, except Q8 and "
                   "Q4_K on AMX-INT8 CPUs, whose tiles sum in another order unless FATHOM_AMX=off; for Q4_0 / Q4_1 / "
                   "Q5_0 / Q5_1 about twice as fast as exact)")
        ->check(CLI::IsMember({"int8", "exact"}));
    app.add_flag("--map-weights", map_weights,
                 "compute on the mapped checkpoint where its format is the one computed on (no copy onto huge "
                 "pages: less memory, exact bf16 decode 4-9 % slower)");
    app.add_option("--kv-cache", kv_cache, "KV cache precision: f32 (exact) or bf16 (half the memory, inexact)")
        ->check(CLI::IsMember({"f32", "bf16"}));
    if (omp_threads) app.add_option("-t,--threads", threads, "OpenMP threads (default: all cores)");
  }

  fathom::LoadOptions load_options() const {
    static const std::map<std::string, fathom::WeightFormat> formats = {
        {"as-stored", fathom::WeightFormat::AsStored}, {"f32", fathom::WeightFormat::F32},
        {"bf16", fathom::WeightFormat::BF16}, {"q8", fathom::WeightFormat::Q8}};
    return {formats.at(weights), map_weights};
  }

  fathom::KvPrecision kv_precision() const {
    return kv_cache == "bf16" ? fathom::KvPrecision::BF16 : fathom::KvPrecision::F32;
  }

  std::unique_ptr<fathom::Model> load() const {
    if (threads > 0) omp_set_num_threads(threads);
    if (activations == "bf16") fathom::kernels::set_bf16_activations(true);
    if (!prefill.empty()) fathom::kernels::set_exact_prefill(prefill == "exact");
    return fathom::load_model(model, load_options());
  }
  fathom::tok::AnyTokenizer load_tokenizer() const {
    return fathom::tok::load_tokenizer_for(model, tokenizer);
  }
};

// "1,2,3" -> ids (fathom/core/id_list.hpp)
inline std::vector<int32_t> parse_ids(const std::string& s) { return fathom::parse_id_list(s, "--ids"); }

// One prompt per non-empty line of `file` (CR LF line ends accepted).
inline std::vector<std::string> read_prompts(const std::string& file) {
  std::ifstream f(file, std::ios::binary);
  if (!f) throw fathom::IoError(file, "", "cannot open the prompts file");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  if (out.empty()) throw fathom::DataError(file, "", "no prompts (one prompt per non-empty line)");
  return out;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs main_body, turning fathom errors into a one-line message and exit code 1.
template <class F>
int guarded(F&& main_body) {
  try {
    return main_body();
  } catch (const fathom::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace examples
