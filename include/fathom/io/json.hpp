#pragma once
// JSON files (config.json, safetensors headers, index files) with errors that say where: invalid
// UTF-8 and syntax errors give the byte position, typed field access gives the field name and the
// type that was found instead.
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fathom/core/error.hpp"
#include "fathom/core/text_file.hpp"

namespace fathom::io {

using Json = nlohmann::json;

namespace detail {

// Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or nullopt.
inline std::optional<size_t> first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c == 0xe0) { len = 3; lo = 0xa0; }
    else if (c == 0xed) { len = 3; hi = 0x9f; }
    else if (c >= 0xe1 && c <= 0xef) len = 3;
    else if (c == 0xf0) { len = 4; lo = 0x90; }
    else if (c >= 0xf1 && c <= 0xf3) len = 4;
    else if (c == 0xf4) { len = 4; hi = 0x8f; }
    else return i;
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xc0) != 0x80) return i;
    i += len;
  }
  return std::nullopt;
}

// "integer", "float", "string", ... as a researcher would name the JSON value they wrote.
inline std::string json_kind(const Json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "float";
  if (v.is_boolean()) return "boolean";
  return v.type_name();
}

}  // namespace detail

// Parses JSON text; `label` names the source (a file path) in errors.
inline Json parse_json(std::string_view text, const std::string& label) {
  if (auto bad = detail::first_invalid_utf8(text))
    throw FormatError(label, "", "invalid UTF-8 at byte " + std::to_string(*bad));
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ..."; keep
    // the part after the prefix and put the byte offset first.
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    throw FormatError(label, "",
                      "invalid JSON at byte " + std::to_string(e.byte ? e.byte - 1 : 0) + ": " + what);
  } catch (const nlohmann::json::exception& e) {  // e.g. a number that overflows (found by fuzzing)
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    throw FormatError(label, "", "invalid JSON: " + what);
  }
}

// JSON Lines: calls fn(json, where) for every non-blank line, where = "<file>:<line>" (1-based),
// the label errors about that line should carry; a line that is not JSON is a FormatError there.
template <class Fn>
void for_each_json_line(std::string_view text, const std::string& file, Fn&& fn) {
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = file + ":" + std::to_string(line_no);
    fn(parse_json(line, where), where);
  }
}

inline Json read_json_file(const std::filesystem::path& path) {
  return parse_json(read_text_file(path), path.string());
}

// Typed access to the members of one JSON object. Errors are ConfigError(file, prefix + key, ...)
// by default; set `format_errors` for data files where FormatError is the right type.
class JsonObjectReader {
 public:
  JsonObjectReader(const Json& obj, std::string file, std::string prefix = {})
      : obj_(obj), file_(std::move(file)), prefix_(std::move(prefix)) {
    if (!obj_.is_object())
      throw ConfigError(file_, prefix_.empty() ? "" : prefix_.substr(0, prefix_.size() - 1),
                        "expected a JSON object, got " + detail::json_kind(obj_));
  }

  const Json& json() const { return obj_; }
  const std::string& file() const { return file_; }
  std::string field(std::string_view key) const { return prefix_ + std::string(key); }

  // The member, or nullptr when absent or null (transformers treats both as "use the default").
  const Json* find(std::string_view key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool contains(std::string_view key) const { return obj_.find(key) != obj_.end(); }
  bool is_null(std::string_view key) const {
    auto it = obj_.find(key);
    return it != obj_.end() && it->is_null();
  }

  [[noreturn]] void fail(std::string_view key, const std::string& reason) const {
    throw ConfigError(file_, field(key), reason);
  }
  const Json& require(std::string_view key) const {
    if (const Json* v = find(key)) return *v;
    fail(key, is_null(key) ? "is null, expected a value" : "missing");
  }

  int64_t to_int(std::string_view key, const Json& v) const {
    if (v.is_number_unsigned()) {
      auto u = v.get<uint64_t>();
      if (u > uint64_t(std::numeric_limits<int64_t>::max())) fail(key, "integer out of range");
      return int64_t(u);
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    fail(key, "expected integer, got " + detail::json_kind(v));
  }
  double to_number(std::string_view key, const Json& v) const {
    if (!v.is_number()) fail(key, "expected number, got " + detail::json_kind(v));
    return v.get<double>();
  }

  int64_t integer(std::string_view key) const { return to_int(key, require(key)); }
  std::optional<int64_t> opt_integer(std::string_view key) const {
    const Json* v = find(key);
    return v ? std::optional<int64_t>(to_int(key, *v)) : std::nullopt;
  }
  int64_t integer_or(std::string_view key, int64_t def) const { return opt_integer(key).value_or(def); }

  double number(std::string_view key) const { return to_number(key, require(key)); }
  double number_or(std::string_view key, double def) const {
    const Json* v = find(key);
    return v ? to_number(key, *v) : def;
  }

  bool boolean_or(std::string_view key, bool def) const {
    const Json* v = find(key);
    if (!v) return def;
    if (!v->is_boolean()) fail(key, "expected boolean, got " + detail::json_kind(*v));
    return v->get<bool>();
  }

  std::string string(std::string_view key) const {
    const Json& v = require(key);
    if (!v.is_string()) fail(key, "expected string, got " + detail::json_kind(v));
    return v.get<std::string>();
  }
  std::optional<std::string> opt_string(std::string_view key) const {
    const Json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) fail(key, "expected string, got " + detail::json_kind(*v));
    return v->get<std::string>();
  }

 private:
  const Json& obj_;
  std::string file_, prefix_;
};

}  // namespace fathom::io
