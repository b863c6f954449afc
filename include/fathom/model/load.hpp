#pragma once
// One call from a path to a runnable model: a llama2.c `.bin`, a llama.cpp `.gguf`, or a Hugging
// Face folder / .safetensors file with its config.json.
#include <filesystem>
#include <memory>

#include "fathom/io/checkpoint.hpp"
#include "fathom/kernels/weight_buffer.hpp"
#include "fathom/model/model.hpp"

namespace fathom {

inline std::unique_ptr<Model> load_model(const std::filesystem::path& path, LoadOptions opts = {}) {
  kernels::WeightArena arena;  // the weights made below side by side on huge pages (weight_buffer.hpp)
  auto ck = io::load_checkpoint(path, opts.weights);
  auto store = std::make_shared<io::TensorStore>(std::move(ck.weights));
  if (store->origin().empty()) store->set_origin(path.string());
  return std::make_unique<Model>(std::move(ck.config), std::move(store), opts);
}

}  // namespace fathom
