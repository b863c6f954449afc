#pragma once
// The one way fathom reads a whole file into memory (configs, tokenizer files, benchmark data,
// texts). It lives in core because every layer reads files, and a failure must be the same typed
// IoError naming the file wherever it happens.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "fathom/core/error.hpp"

namespace fathom {

// The bytes of `path` as they are (binary mode: no newline translation).
inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path.string(), "", "cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(path.string(), "", "read failed");
  return std::move(ss).str();
}

}  // namespace fathom
