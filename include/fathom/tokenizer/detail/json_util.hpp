#pragma once
// Typed access to tokenizer.json fields: every missing or mistyped field becomes a
// TokenizerError naming the file and the JSON path.
#include <nlohmann/json.hpp>

#include <string>

#include "fathom/core/error.hpp"

namespace fathom::tok::detail {

using json = nlohmann::json;

struct JsonCtx {
  std::string file;
  [[noreturn]] void fail(const std::string& path, const std::string& why) const {
    throw TokenizerError(file, path, why);
  }
  [[noreturn]] void unsupported(const std::string& path, const std::string& what) const {
    throw UnsupportedError(file, path, "unsupported: " + what);
  }
  const json& at(const json& j, const std::string& key, const std::string& path) const {
    if (!j.is_object()) fail(path, "expected an object");
    auto it = j.find(key);
    if (it == j.end()) fail(path + "." + key, "missing");
    return *it;
  }
  std::string str(const json& j, const std::string& key, const std::string& path) const {
    const json& v = at(j, key, path);
    if (!v.is_string()) fail(path + "." + key, "expected a string");
    return v.get<std::string>();
  }
  std::string str_or(const json& j, const std::string& key, const std::string& path,
                     const std::string& dflt) const {
    if (!j.is_object() || !j.contains(key) || j[key].is_null()) return dflt;
    return str(j, key, path);
  }
  bool boolean_or(const json& j, const std::string& key, const std::string& path, bool dflt) const {
    if (!j.is_object() || !j.contains(key) || j[key].is_null()) return dflt;
    if (!j[key].is_boolean()) fail(path + "." + key, "expected true or false");
    return j[key].get<bool>();
  }
  long long integer(const json& j, const std::string& key, const std::string& path) const {
    const json& v = at(j, key, path);
    if (!v.is_number_integer()) fail(path + "." + key, "expected an integer");
    return v.get<long long>();
  }
  // The "type" of a component object.
  std::string type(const json& j, const std::string& path) const { return str(j, "type", path); }
};

}  // namespace fathom::tok::detail
