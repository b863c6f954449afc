#pragma once
// What loading a checkpoint yields, whatever its format: the model's config and its weights under
// Hugging Face tensor names.
#include <filesystem>

#include "fathom/io/tensor_store.hpp"
#include "fathom/core/model_config.hpp"

namespace fathom::io {

struct Checkpoint {
  ModelConfig config;
  TensorStore weights;
  std::filesystem::path path;  // the file or folder it was loaded from
};

}  // namespace fathom::io
