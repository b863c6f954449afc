#pragma once
// Where the real tokenizers, models and data live: $FATHOM_SHARED, else the build's default
// (../shared beside the source tree). Never copied into the repository.
#include <cstdlib>
#include <filesystem>
#include <string>

#include "fathom/core/error.hpp"

namespace fathom {

inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("FATHOM_SHARED"); env && *env) return env;
#ifdef FATHOM_SHARED_DEFAULT
  return FATHOM_SHARED_DEFAULT;
#else
  return "../shared";
#endif
}

// A file under the shared folder, or an IoError that says where we looked and how to point
// fathom elsewhere.
inline std::filesystem::path shared_file(const std::string& relative) {
  auto p = shared_dir() / relative;
  if (!std::filesystem::exists(p))
    throw IoError(p.string(), "", "not found (shared data is looked up in $FATHOM_SHARED, default " +
                                      shared_dir().string() + "; set FATHOM_SHARED to its folder)");
  return p;
}

}  // namespace fathom
