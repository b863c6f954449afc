#pragma once
// The values a Jinja template computes with: Python's None/bool/int/float/str/list/dict plus
// Jinja's Undefined, namespace() objects and callables (macros, globals, bound methods).
// Lists and dicts are shared by reference, as in Python (a namespace is mutated in place).
// Dicts keep insertion order (Python 3.7+), which tojson and items() expose.
//
// Python semantics that change the bytes a template prints live here: str() of floats
// (shortest round trip, "1.0", "1e+16"), bools ("True") and None ("None"), repr of strings
// inside containers, and json.dumps as transformers' tojson calls it.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fathom/tokenizer/detail/utf8.hpp"
#include "fathom/tokenizer/jinja/error.hpp"

namespace fathom::tok::jinja {

class Value;
using List = std::vector<Value>;
struct Dict;
struct Function;

class Value {
 public:
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Function };

  Value() = default;  // Undefined
  static Value undefined(std::string hint = {}) { Value v; v.s_ = std::move(hint); return v; }
  static Value none() { Value v; v.k_ = Kind::None; return v; }
  static Value boolean(bool b) { Value v; v.k_ = Kind::Bool; v.i_ = b; return v; }
  static Value integer(int64_t i) { Value v; v.k_ = Kind::Int; v.i_ = i; return v; }
  static Value number(double f) { Value v; v.k_ = Kind::Float; v.f_ = f; return v; }
  static Value string(std::string s) { Value v; v.k_ = Kind::String; v.s_ = std::move(s); return v; }
  static Value list(List l = {});
  static Value tuple(List l) { Value v = list(std::move(l)); v.tuple_ = true; return v; }  // a list that prints as (a, b)
  static Value dict();
  static Value namespace_();
  static Value function(std::string name, std::function<Value(struct CallArgs&)> fn);

  Kind kind() const { return k_; }
  bool is_undefined() const { return k_ == Kind::Undefined; }
  bool is_none() const { return k_ == Kind::None; }
  bool is_bool() const { return k_ == Kind::Bool; }
  bool is_int() const { return k_ == Kind::Int; }
  bool is_float() const { return k_ == Kind::Float; }
  bool is_number() const { return k_ == Kind::Int || k_ == Kind::Float; }  // bool excluded (Jinja's `number` test)
  bool is_string() const { return k_ == Kind::String; }
  bool is_list() const { return k_ == Kind::List; }
  bool is_tuple() const { return k_ == Kind::List && tuple_; }
  bool is_dict() const { return k_ == Kind::Dict; }
  bool is_namespace() const { return k_ == Kind::Namespace; }
  bool is_mapping_like() const { return k_ == Kind::Dict || k_ == Kind::Namespace; }
  bool is_function() const { return k_ == Kind::Function; }

  bool as_bool() const { return i_ != 0; }
  int64_t as_int() const { return i_; }  // Int or Bool
  double as_float() const { return k_ == Kind::Float ? f_ : double(i_); }
  const std::string& str() const { return s_; }  // String; for Undefined the name it stands for
  List& items() const { return *l_; }
  Dict& map() const { return *d_; }
  const Function& fn() const { return *fn_; }
  bool same_object(const Value& o) const {  // Python `is` for containers
    return k_ == o.k_ && l_ == o.l_ && d_ == o.d_ && fn_ == o.fn_;
  }

 private:
  Kind k_ = Kind::Undefined;
  bool tuple_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<List> l_;
  std::shared_ptr<Dict> d_;
  std::shared_ptr<Function> fn_;
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* kwarg(std::string_view name) const {
    for (const auto& [k, v] : kw) if (k == name) return &v;
    return nullptr;
  }
};

struct Function {
  std::string name;
  std::function<Value(CallArgs&)> call;
};

bool equals(const Value& a, const Value& b);

// Insertion-ordered; keys compare with Python equality (1 == 1.0 == True).
struct Dict {
  std::vector<std::pair<Value, Value>> entries;
  const Value* find(const Value& key) const {
    for (const auto& [k, v] : entries) if (equals(k, key)) return &v;
    return nullptr;
  }
  const Value* find(std::string_view key) const {
    for (const auto& [k, v] : entries) if (k.is_string() && k.str() == key) return &v;
    return nullptr;
  }
  void set(Value key, Value v) {
    for (auto& [k, old] : entries) if (equals(k, key)) { old = std::move(v); return; }
    entries.emplace_back(std::move(key), std::move(v));
  }
};

inline Value Value::list(List l) { Value v; v.k_ = Kind::List; v.l_ = std::make_shared<List>(std::move(l)); return v; }
inline Value Value::dict() { Value v; v.k_ = Kind::Dict; v.d_ = std::make_shared<Dict>(); return v; }
inline Value Value::namespace_() { Value v = dict(); v.k_ = Kind::Namespace; return v; }
inline Value Value::function(std::string name, std::function<Value(CallArgs&)> fn) {
  Value v;
  v.k_ = Kind::Function;
  v.fn_ = std::make_shared<Function>(Function{std::move(name), std::move(fn)});
  return v;
}

// Python's name of a value's type, for messages ("str", "dict object"...).
inline std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return "undefined";
    case Value::Kind::None: return "NoneType";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Namespace: return "namespace";
    case Value::Kind::Function: return "function";
  }
  return "?";
}

inline bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: case Value::Kind::None: return false;
    case Value::Kind::Bool: case Value::Kind::Int: return v.as_int() != 0;
    case Value::Kind::Float: return v.as_float() != 0.0;
    case Value::Kind::String: return !v.str().empty();
    case Value::Kind::List: return !v.items().empty();
    case Value::Kind::Dict: return !v.map().entries.empty();
    case Value::Kind::Namespace: case Value::Kind::Function: return true;
  }
  return false;
}

inline bool equals(const Value& a, const Value& b) {
  using K = Value::Kind;
  const bool an = a.is_number() || a.is_bool(), bn = b.is_number() || b.is_bool();
  if (an && bn) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::Undefined: case K::None: return true;
    case K::String: return a.str() == b.str();
    case K::List: {
      if (a.is_tuple() != b.is_tuple() || a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i) if (!equals(a.items()[i], b.items()[i])) return false;
      return true;
    }
    case K::Dict: {
      const auto &x = a.map().entries, &y = b.map().entries;
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x) {
        const Value* o = b.map().find(k);
        if (!o || !equals(v, *o)) return false;
      }
      return true;
    }
    default: return a.same_object(b);
  }
}

// ---- UTF-8 code points (Python indexes strings by code point) ----
namespace detail {

// Byte offsets of each code point of a valid UTF-8 string, plus s.size() at the end.
inline std::vector<size_t> cp_offsets(std::string_view s) {
  std::vector<size_t> off;  // [n_code_points + 1]
  off.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    off.push_back(i);
    const size_t n = tok::detail::utf8_seq_len(s, i);
    i += n ? n : 1;
  }
  off.push_back(s.size());
  return off;
}
inline size_t cp_count(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Python float.__repr__: the shortest digits that round-trip, fixed notation for exponents in
// [-4, 16), else d.ddde+XX.
inline std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  const size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  const int exp = std::stoi(sci.substr(e + 1));
  std::string sign;
  if (mant[0] == '-') { sign = "-"; mant.erase(0, 1); }
  std::string digits;
  for (char c : mant) if (c != '.') digits += c;
  if (exp >= -4 && exp < 16) {
    std::string out;
    if (exp < 0) {
      out = "0." + std::string(size_t(-exp - 1), '0') + digits;
    } else if (size_t(exp) + 1 >= digits.size()) {
      out = digits + std::string(size_t(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
    }
    return sign + out;
  }
  std::string out = digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char eb[16];
  std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return sign + out + eb;
}

inline std::string py_repr_string(const std::string& s) {
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == q) { out += '\\'; out += char(c); }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) { char b[8]; std::snprintf(b, sizeof b, "\\x%02x", c); out += b; }
    else out += char(c);
  }
  return out + q;
}

}  // namespace detail

std::string py_repr(const Value& v);

// Python str(): what {{ value }} prints.
inline std::string py_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return "";
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return v.as_bool() ? "True" : "False";
    case Value::Kind::Int: return std::to_string(v.as_int());
    case Value::Kind::Float: return detail::float_repr(v.as_float());
    case Value::Kind::String: return v.str();
    default: return py_repr(v);
  }
}

inline std::string py_repr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::String: return detail::py_repr_string(v.str());
    case Value::Kind::List: {
      std::string out = v.is_tuple() ? "(" : "[";
      for (size_t i = 0; i < v.items().size(); ++i) { if (i) out += ", "; out += py_repr(v.items()[i]); }
      if (v.is_tuple()) return out + (v.items().size() == 1 ? ",)" : ")");
      return out + "]";
    }
    case Value::Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : v.map().entries) {
        if (!first) out += ", ";
        first = false;
        out += py_repr(k) + ": " + py_repr(x);
      }
      return out + "}";
    }
    case Value::Kind::Namespace: return "<Namespace>";
    case Value::Kind::Function: return "<function " + v.fn().name + ">";
    default: return py_str(v);
  }
}

// json.dumps(v, ensure_ascii=False, indent=indent, separators=..., sort_keys=...), as
// transformers' tojson filter calls it. indent: empty = None; otherwise the indent string.
struct JsonStyle {
  bool has_indent = false;
  std::string indent;
  std::string item_sep = ", ", key_sep = ": ";
  bool sort_keys = false;
};

namespace detail {

inline void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); out += b; }
        else out += char(c);
    }
  }
  out += '"';
}

inline std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return float_repr(d);
}

inline void to_json(std::string& out, const Value& v, const JsonStyle& st, int depth) {
  if (depth > 200) throw RenderError("", "tojson", "nesting deeper than 200 levels");
  const auto newline = [&](int d) {
    out += '\n';
    for (int i = 0; i < d; ++i) out += st.indent;
  };
  switch (v.kind()) {
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.as_int()); return;
    case Value::Kind::Float: out += json_float(v.as_float()); return;
    case Value::Kind::String: json_string(out, v.str()); return;
    case Value::Kind::List: {
      if (v.items().empty()) { out += "[]"; return; }
      out += '[';
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i) out += st.item_sep;
        if (st.has_indent) newline(depth + 1);
        to_json(out, v.items()[i], st, depth + 1);
      }
      if (st.has_indent) newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      if (v.map().entries.empty()) { out += "{}"; return; }
      std::vector<std::pair<std::string, const Value*>> kv;  // [n_entries] (key text, value)
      for (const auto& [k, x] : v.map().entries) {
        std::string key;
        if (k.is_string()) key = k.str();
        else if (k.is_bool()) key = k.as_bool() ? "true" : "false";
        else if (k.is_int()) key = std::to_string(k.as_int());
        else if (k.is_float()) key = json_float(k.as_float());
        else if (k.is_none()) key = "null";
        else throw RenderError("", "tojson", "keys must be str, int, float, bool or None, not " + type_name(k));
        kv.emplace_back(std::move(key), &x);
      }
      if (st.sort_keys)
        std::stable_sort(kv.begin(), kv.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t i = 0; i < kv.size(); ++i) {
        if (i) out += st.item_sep;
        if (st.has_indent) newline(depth + 1);
        json_string(out, kv[i].first);
        out += st.key_sep;
        to_json(out, *kv[i].second, st, depth + 1);
      }
      if (st.has_indent) newline(depth);
      out += '}';
      return;
    }
    default:
      throw RenderError("", "tojson", "Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace detail

inline std::string to_json(const Value& v, const JsonStyle& st = {}) {
  std::string out;
  detail::to_json(out, v, st, 0);
  return out;
}

// From nlohmann::json / ordered_json (insertion order kept for ordered_json). Strings that are
// not valid UTF-8 are repaired (U+FFFD), as Python text always is.
template <class Json>
Value from_json(const Json& j, int depth = 0) {
  if (depth > 200) throw RenderError("", "json", "nesting deeper than 200 levels");
  if (j.is_null()) return Value::none();
  if (j.is_boolean()) return Value::boolean(j.template get<bool>());
  if (j.is_number_integer()) {
    if (j.is_number_unsigned() && j.template get<uint64_t>() > uint64_t(INT64_MAX))
      return Value::number(double(j.template get<uint64_t>()));
    return Value::integer(j.template get<int64_t>());
  }
  if (j.is_number_float()) return Value::number(j.template get<double>());
  if (j.is_string()) {
    const auto& s = j.template get_ref<const std::string&>();
    return Value::string(tok::detail::is_valid_utf8(s) ? s : tok::detail::utf8_lossy(s));
  }
  if (j.is_array()) {
    List l;
    l.reserve(j.size());
    for (const auto& e : j) l.push_back(from_json(e, depth + 1));
    return Value::list(std::move(l));
  }
  if (j.is_object()) {
    Value d = Value::dict();
    for (auto it = j.begin(); it != j.end(); ++it)
      d.map().entries.emplace_back(from_json(Json(it.key()), depth + 1), from_json(it.value(), depth + 1));
    return d;
  }
  return Value::none();  // binary: not produced by JSON text
}

}  // namespace fathom::tok::jinja
