#pragma once
// Operations shared by the evaluator and the filters: the error site, iteration, attribute and
// item lookup as Jinja's sandbox does them (a failed lookup is Undefined, except on Undefined
// itself), ordering, and the str/dict methods templates call (message.content.strip()).
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/tokenizer/jinja/error.hpp"
#include "fathom/tokenizer/jinja/pystr.hpp"
#include "fathom/tokenizer/jinja/value.hpp"

namespace fathom::tok::jinja {

// Where an operation happens: the template and position for error messages, and the size
// limit every produced string is held to.
struct Site {
  const std::string* tpl;
  Pos pos;
  size_t max_string = size_t(1) << 24;

  [[noreturn]] void fail(const std::string& construct, const std::string& why) const {
    throw RenderError(*tpl, pos.str(), construct + ": " + why);
  }
  [[noreturn]] void unsupported(const std::string& construct, const std::string& why) const {
    throw UnsupportedConstruct(*tpl, pos.str(), construct + ": " + why);
  }
  void check_size(size_t n, const char* construct) const {
    if (n > max_string)
      throw LimitError(*tpl, pos.str(), std::string(construct) + ": a string of " + std::to_string(n) +
                                            " bytes exceeds the limit of " + std::to_string(max_string));
  }
  [[noreturn]] void undefined(const Value& v, const std::string& construct) const {
    fail(construct, v.str().empty() ? "value is undefined" : v.str());
  }
};

// Python iter(): the elements of a list, the keys of a dict, the characters of a string;
// Undefined iterates as empty.
inline List iterate(const Value& v, const Site& at, const char* construct) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::List: return v.items();
    case Value::Kind::Dict: {
      List out;
      for (const auto& [k, x] : v.map().entries) out.push_back(k);
      return out;
    }
    case Value::Kind::String: {
      List out;
      const std::string& s = v.str();
      for (size_t i = 0; i < s.size();) {
        const size_t st = i;
        tok::detail::next_cp(s, i);
        out.push_back(Value::string(s.substr(st, i - st)));
      }
      return out;
    }
    default: at.fail(construct, "'" + type_name(v) + "' object is not iterable");
  }
}

inline int64_t py_len(const Value& v, const Site& at, const char* construct) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return int64_t(detail::cp_count(v.str()));
    case Value::Kind::List: return int64_t(v.items().size());
    case Value::Kind::Dict: return int64_t(v.map().entries.size());
    default: at.fail(construct, "object of type '" + type_name(v) + "' has no len()");
  }
}

// Python's < for the types templates sort or compare.
inline bool less(const Value& a, const Value& b, const Site& at, const char* construct) {
  const bool an = a.is_number() || a.is_bool(), bn = b.is_number() || b.is_bool();
  if (an && bn) {
    if (a.is_float() || b.is_float()) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) {
    // Code point order equals UTF-8 byte order.
    return a.str() < b.str();
  }
  if (a.is_list() && b.is_list()) {
    const auto &x = a.items(), &y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return less(x[i], y[i], at, construct);
    }
    return x.size() < y.size();
  }
  at.fail(construct, "'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

// Normalises a Python index (negative from the end); -1 when out of range.
inline int64_t norm_index(int64_t i, int64_t n) {
  if (i < 0) i += n;
  return (i < 0 || i >= n) ? -1 : i;
}

// obj[key], Jinja style: a failed lookup is Undefined (then `obj.key` is tried for strings).
Value get_attr(const Value& obj, const std::string& name, const Site& at);

inline Value get_item(const Value& obj, const Value& key, const Site& at) {
  if (obj.is_undefined()) at.undefined(obj, "subscript");
  if (obj.is_mapping_like()) {
    if (const Value* v = obj.map().find(key)) return *v;
  } else if (obj.is_list() && (key.is_int() || key.is_bool())) {
    const int64_t i = norm_index(key.as_int(), int64_t(obj.items().size()));
    if (i >= 0) return obj.items()[size_t(i)];
  } else if (obj.is_string() && (key.is_int() || key.is_bool())) {
    const auto off = detail::cp_offsets(obj.str());
    const int64_t i = norm_index(key.as_int(), int64_t(off.size()) - 1);
    if (i >= 0) return Value::string(obj.str().substr(off[size_t(i)], off[size_t(i) + 1] - off[size_t(i)]));
  }
  if (key.is_string() && !obj.is_mapping_like()) return get_attr(obj, key.str(), at);
  // Jinja's wording: a string key reads as an attribute, anything else as an element.
  if (key.is_string()) return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + key.str() + "'");
  return Value::undefined("'" + type_name(obj) + " object' has no element " + py_repr(key));
}

namespace detail {

inline const std::string* opt_str(const CallArgs& a, size_t i, const char* kw, const Site& at, const char* m) {
  const Value* v = i < a.pos.size() ? &a.pos[i] : a.kwarg(kw);
  if (!v || v->is_none()) return nullptr;
  if (!v->is_string()) at.fail(m, std::string("argument '") + kw + "' must be a string, not " + type_name(*v));
  return &v->str();
}
inline int64_t opt_int(const CallArgs& a, size_t i, const char* kw, int64_t def, const Site& at, const char* m) {
  const Value* v = i < a.pos.size() ? &a.pos[i] : a.kwarg(kw);
  if (!v || v->is_none()) return def;
  if (!v->is_int() && !v->is_bool()) at.fail(m, std::string("argument '") + kw + "' must be an integer, not " + type_name(*v));
  return v->as_int();
}

inline Value str_list(std::vector<std::string> parts) {
  List l;
  l.reserve(parts.size());
  for (auto& p : parts) l.push_back(Value::string(std::move(p)));
  return Value::list(std::move(l));
}

// The bound methods of str and dict that chat templates use.
inline Value call_method(const Value& self, const std::string& name, CallArgs& a, const Site& at) {
  const std::string m = type_name(self) + "." + name;
  const char* mc = m.c_str();
  if (self.is_string()) {
    const std::string& s = self.str();
    if (name == "strip" || name == "lstrip" || name == "rstrip")
      return Value::string(pystr::strip(s, opt_str(a, 0, "chars", at, mc), name != "rstrip", name != "lstrip"));
    if (name == "split") return str_list(pystr::split(s, [&] {
                                const std::string* sep = opt_str(a, 0, "sep", at, mc);
                                if (sep && sep->empty()) at.fail(mc, "empty separator");
                                return sep; }(), opt_int(a, 1, "maxsplit", -1, at, mc)));
    if (name == "rsplit") return str_list(pystr::rsplit(s, [&] {
                                const std::string* sep = opt_str(a, 0, "sep", at, mc);
                                if (sep && sep->empty()) at.fail(mc, "empty separator");
                                return sep; }(), opt_int(a, 1, "maxsplit", -1, at, mc)));
    if (name == "splitlines") return str_list(pystr::splitlines(s));
    if (name == "startswith" || name == "endswith") {
      if (a.pos.empty()) at.fail(mc, "takes a prefix");
      if (a.pos.size() > 1) at.unsupported(mc, "start/end arguments are not supported");
      std::vector<std::string> opts;
      if (a.pos[0].is_string()) opts.push_back(a.pos[0].str());
      else if (a.pos[0].is_list())
        for (const auto& x : a.pos[0].items()) {
          if (!x.is_string()) at.fail(mc, "tuple for " + name + " must only contain str");
          opts.push_back(x.str());
        }
      else at.fail(mc, "argument must be str or a tuple of str, not " + type_name(a.pos[0]));
      for (const auto& o : opts)
        if (name == "startswith" ? std::string_view(s).starts_with(o) : std::string_view(s).ends_with(o))
          return Value::boolean(true);
      return Value::boolean(false);
    }
    if (name == "upper") return Value::string(pystr::upper(s));
    if (name == "lower") return Value::string(pystr::lower(s));
    if (name == "title") return Value::string(pystr::title(s));
    if (name == "capitalize") return Value::string(pystr::capitalize(s));
    if (name == "replace") {
      const std::string* from = opt_str(a, 0, "old", at, mc);
      const std::string* to = opt_str(a, 1, "new", at, mc);
      if (!from || !to) at.fail(mc, "takes old and new strings");
      std::string r = pystr::replace(s, *from, *to, opt_int(a, 2, "count", -1, at, mc));
      at.check_size(r.size(), mc);
      return Value::string(std::move(r));
    }
    if (name == "find" || name == "rfind" || name == "count" || name == "index" || name == "rindex") {
      const std::string* sub = opt_str(a, 0, "sub", at, mc);
      if (!sub) at.fail(mc, "takes a string");
      if (a.pos.size() > 1) at.unsupported(mc, "start/end arguments are not supported");
      if (name == "count") {
        if (sub->empty()) return Value::integer(int64_t(detail::cp_count(s)) + 1);
        int64_t n = 0;
        for (size_t k = s.find(*sub); k != std::string::npos; k = s.find(*sub, k + sub->size())) ++n;
        return Value::integer(n);
      }
      const size_t k = (name == "find" || name == "index") ? s.find(*sub) : s.rfind(*sub);
      if (k == std::string::npos) {
        if (name == "index" || name == "rindex") at.fail(mc, "substring not found");
        return Value::integer(-1);
      }
      return Value::integer(pystr::cp_index(s, k));
    }
    if (name == "join") {
      if (a.pos.size() != 1) at.fail(mc, "takes one iterable");
      std::string out;
      const List items = iterate(a.pos[0], at, mc);
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string()) at.fail(mc, "sequence item " + std::to_string(i) + ": expected str instance, " + type_name(items[i]) + " found");
        if (i) out += s;
        out += items[i].str();
        at.check_size(out.size(), mc);
      }
      return Value::string(std::move(out));
    }
    if (name == "removeprefix" || name == "removesuffix") {
      const std::string* x = opt_str(a, 0, "prefix", at, mc);
      if (!x) at.fail(mc, "takes a string");
      if (name == "removeprefix") return Value::string(std::string_view(s).starts_with(*x) ? s.substr(x->size()) : s);
      return Value::string(std::string_view(s).ends_with(*x) ? s.substr(0, s.size() - x->size()) : s);
    }
    if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
        name == "islower") {
      if (s.empty()) return Value::boolean(false);
      bool cased = false, ok = true;
      for (size_t i = 0; i < s.size();) {
        const char32_t c = tok::detail::next_cp(s, i);
        const bool dig = c >= '0' && c <= '9', up = c >= 'A' && c <= 'Z', lo = c >= 'a' && c <= 'z';
        if (name == "isdigit") ok &= dig;
        else if (name == "isalpha") ok &= up || lo;
        else if (name == "isalnum") ok &= up || lo || dig;
        else if (name == "isspace") ok &= tok::detail::is_python_space(c);
        else if (name == "isupper") { ok &= !lo; cased |= up; }
        else { ok &= !up; cased |= lo; }
      }
      return Value::boolean(ok && (name == "isupper" || name == "islower" ? cased : true));
    }
    at.unsupported(mc, "this str method is not supported");
  }
  if (self.is_dict()) {
    const Dict& d = self.map();
    if (name == "items" || name == "keys" || name == "values") {
      List out;
      for (const auto& [k, v] : d.entries) {
        if (name == "items") out.push_back(Value::tuple({k, v}));
        else out.push_back(name == "keys" ? k : v);
      }
      return Value::list(std::move(out));
    }
    if (name == "get") {
      if (a.pos.empty()) at.fail(mc, "takes a key");
      if (const Value* v = d.find(a.pos[0])) return *v;
      return a.pos.size() > 1 ? a.pos[1] : Value::none();
    }
    if (name == "copy") {
      Value c = Value::dict();
      c.map() = d;
      return c;
    }
    at.fail(mc, "modifying a dict is not allowed in a chat template (immutable sandbox)");
  }
  if (self.is_list()) {
    if (name == "count") {
      if (a.pos.size() != 1) at.fail(mc, "takes one value");
      int64_t n = 0;
      for (const auto& x : self.items()) n += equals(x, a.pos[0]);
      return Value::integer(n);
    }
    if (name == "index") {
      if (a.pos.size() != 1) at.fail(mc, "takes one value");
      for (size_t i = 0; i < self.items().size(); ++i) if (equals(self.items()[i], a.pos[0])) return Value::integer(int64_t(i));
      at.fail(mc, "value is not in list");
    }
    at.fail(mc, "modifying a list is not allowed in a chat template (immutable sandbox)");
  }
  at.fail(mc, "no such method");
}

inline bool is_method(const Value& v, const std::string& name) {
  static const char* str_m[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith",
                                "upper", "lower", "title", "capitalize", "replace", "find", "rfind", "count", "index",
                                "rindex", "join", "removeprefix", "removesuffix", "isdigit", "isalpha", "isalnum",
                                "isspace", "isupper", "islower",
                                // Python methods this renderer does not implement: calling them is an error
                                "format", "format_map", "encode", "expandtabs", "partition", "rpartition", "center",
                                "ljust", "rjust", "zfill", "casefold", "swapcase", "translate", "isdecimal",
                                "isnumeric", "isidentifier", "isprintable", "istitle", "isascii"};
  static const char* dict_m[] = {"items", "keys", "values", "get", "copy", "pop", "popitem", "update", "setdefault", "clear"};
  static const char* list_m[] = {"count", "index", "append", "extend", "insert", "pop", "remove", "sort", "reverse", "clear", "copy"};
  const auto in = [&](const auto& arr) { for (const char* x : arr) if (name == x) return true; return false; };
  if (v.is_string()) return in(str_m);
  if (v.is_dict()) return in(dict_m);
  if (v.is_list()) return in(list_m);
  return false;
}

}  // namespace detail

// obj.name, Jinja style: the attribute (a method of str/dict/list) first, then the item.
inline Value get_attr(const Value& obj, const std::string& name, const Site& at) {
  if (obj.is_undefined()) at.undefined(obj, "attribute '" + name + "'");
  if (detail::is_method(obj, name)) {
    Value self = obj;
    const Site site = at;
    return Value::function(type_name(obj) + "." + name, [self, name, site](CallArgs& a) {
      return detail::call_method(self, name, a, site);
    });
  }
  if (obj.is_mapping_like()) {
    if (const Value* v = obj.map().find(std::string_view(name))) return *v;
  }
  return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + name + "'");
}

}  // namespace fathom::tok::jinja
