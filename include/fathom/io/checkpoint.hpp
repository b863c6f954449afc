#pragma once
// One entry point for every checkpoint format: a llama2.c `.bin`, a llama.cpp `.gguf`, or a Hugging
// Face model (folder with config.json + model.safetensors[.index.json], or a .safetensors file
// whose folder holds config.json).
#include <filesystem>
#include <string>

#include "fathom/core/error.hpp"
#include "fathom/io/checkpoint_data.hpp"
#include "fathom/core/weight_format.hpp"
#include "fathom/io/config.hpp"
#include "fathom/io/gguf_checkpoint.hpp"
#include "fathom/io/llama2c.hpp"
#include "fathom/io/safetensors.hpp"

namespace fathom::io {

// `want` matters only for GGUF, whose quantised tensors are converted straight to it (other
// formats are converted by the Model, see core/weight_format.hpp).
inline Checkpoint load_checkpoint(const std::filesystem::path& path, WeightFormat want = WeightFormat::AsStored) {
  namespace fs = std::filesystem;
  if (!fs::exists(path))
    throw IoError(path.string(), "", "not found (expected a llama2.c .bin file, a .gguf file, a model "
                                     "folder with config.json + model.safetensors, or a .safetensors file)");
  if (fs::is_regular_file(path) && path.extension() == ".bin") return load_llama2c(path);
  if (fs::is_regular_file(path) && path.extension() == ".gguf") return load_gguf(path, want);

  fs::path dir;
  if (fs::is_directory(path)) dir = path;
  else if (path.extension() == ".safetensors" || path.extension() == ".json") dir = path.parent_path();
  else
    throw IoError(path.string(), "", "unknown checkpoint file type (expected .bin for llama2.c, "
                                     ".gguf, .safetensors or a model folder)");
  if (dir.empty()) dir = ".";
  if (!fs::exists(dir / "config.json"))
    throw IoError((dir / "config.json").string(), "",
                  "not found: a Hugging Face checkpoint needs config.json beside its safetensors");
  Checkpoint ck;
  ck.path = path;
  ck.config = load_config(dir);
  // A config.json passed directly means "this model": load the folder's weights.
  ck.weights = load_safetensors(path.extension() == ".safetensors" ? path : dir);
  return ck;
}

}  // namespace fathom::io
