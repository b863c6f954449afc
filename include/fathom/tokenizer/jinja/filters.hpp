#pragma once
// Jinja's filters (`x | name(args)`) and tests (`x is name(args)`) as Jinja 3.1 defines them,
// with transformers' tojson (json.dumps: ensure_ascii=False, indent, separators, sort_keys).
// Jinja filters not listed in kFilters (batch, format, groupby, truncate, urlize, ...) are an
// UnsupportedConstruct when the template is parsed.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/tokenizer/jinja/ops.hpp"

namespace fathom::tok::jinja {

inline constexpr const char* kFilters[] = {
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "indent", "int",
    "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace",
    "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim",
    "unique", "upper", "wordcount"};
inline constexpr const char* kTests[] = {
    "!=", "<", "<=", "==", ">", ">=", "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped",
    "even", "false", "float", "ge", "greaterthan", "gt", "in", "integer", "iterable", "le", "lessthan", "lower",
    "lt", "mapping", "ne", "none", "number", "odd", "sameas", "sequence", "string", "true", "undefined", "upper"};

inline bool has_filter(const std::string& n) {
  for (const char* f : kFilters) if (n == f) return true;
  return false;
}
inline bool has_test(const std::string& n) {
  for (const char* t : kTests) if (n == t) return true;
  return false;
}

Value apply_filter(const std::string& name, const Value& v, CallArgs& a, const Site& at);

namespace detail {

// Argument i (positional) or keyword `kw`, else `def`.
inline Value arg(const CallArgs& a, size_t i, const char* kw, Value def = Value()) {
  if (i < a.pos.size()) return a.pos[i];
  if (const Value* v = a.kwarg(kw)) return *v;
  return def;
}

// "a.b.0" attribute paths of map/selectattr/sort/join.
inline Value attr_path(const Value& v, const std::string& path, const Site& at) {
  Value cur = v;
  size_t b = 0;
  while (true) {
    const size_t e = path.find('.', b);
    const std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
    bool digits = !part.empty();
    for (char c : part) digits &= c >= '0' && c <= '9';
    if (cur.is_undefined()) return cur;
    cur = digits && part.size() < 18 ? get_item(cur, Value::integer(std::stoll(part)), at) : get_item(cur, Value::string(part), at);
    if (e == std::string::npos) return cur;
    b = e + 1;
  }
}

inline std::string soft_str(const Value& v) { return py_str(v); }

inline Value lower_if_str(const Value& v, bool case_sensitive) {
  return (!case_sensitive && v.is_string()) ? Value::string(pystr::lower(v.str())) : v;
}

inline std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

inline std::string json_ascii(const std::string& s) {  // ensure_ascii=True: \uXXXX for non-ASCII
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) { out += char(b); ++i; continue; }
    char32_t c = tok::detail::next_cp(s, i);
    char buf[16];
    if (c >= 0x10000) {
      c -= 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", unsigned(0xD800 + (c >> 10)), unsigned(0xDC00 + (c & 0x3FF)));
    } else {
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
    }
    out += buf;
  }
  return out;
}

inline Value to_int(const Value& v, const Value& def, int64_t base) {
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  if (v.is_float()) {
    const double d = v.as_float();
    if (std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::integer(int64_t(d));
    return def;
  }
  if (v.is_string()) {
    const std::string s = pystr::strip(v.str(), nullptr, true, true);
    std::string t;
    for (char c : s) if (c != '_') t += c;
    if (!t.empty()) {
      char* end = nullptr;
      errno = 0;
      const long long x = std::strtoll(t.c_str(), &end, int(base));
      if (errno == 0 && end && *end == '\0') return Value::integer(x);
      const double d = std::strtod(t.c_str(), &end);
      if (end && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::integer(int64_t(d));
    }
  }
  return def;
}

inline Value to_float(const Value& v, const Value& def) {
  if (v.is_number() || v.is_bool()) return Value::number(v.as_float());
  if (v.is_string()) {
    const std::string s = pystr::strip(v.str(), nullptr, true, true);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == '\0') return Value::number(d);
  }
  return def;
}

inline int cmp_sort(const Value& x, const Value& y, const Site& at) {
  if (less(x, y, at, "sort")) return -1;
  if (less(y, x, at, "sort")) return 1;
  return 0;
}

}  // namespace detail

inline bool apply_test(const std::string& name, const Value& v, const CallArgs& a, const Site& at) {
  const auto need = [&](size_t n) -> const Value& {
    if (a.pos.size() < n) at.fail("test '" + name + "'", "takes " + std::to_string(n) + " argument(s)");
    return a.pos[n - 1];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number() || v.is_bool();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "sequence") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "callable") return v.is_function();
  if (name == "escaped") return false;
  if (name == "lower" || name == "upper") {
    const std::string s = py_str(v);
    bool cased = false, ok = true;
    for (char c : s) {
      if (name == "lower") { ok &= !(c >= 'A' && c <= 'Z'); cased |= c >= 'a' && c <= 'z'; }
      else { ok &= !(c >= 'a' && c <= 'z'); cased |= c >= 'A' && c <= 'Z'; }
    }
    return ok && cased;
  }
  if (name == "odd" || name == "even") {
    if (!v.is_int() && !v.is_bool()) at.fail("test '" + name + "'", "needs an integer, got " + type_name(v));
    return ((v.as_int() % 2) != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value& d = need(1);
    if (!(v.is_int() || v.is_bool()) || !(d.is_int() || d.is_bool())) at.fail("test 'divisibleby'", "needs integers");
    if (d.as_int() == 0) at.fail("test 'divisibleby'", "integer division or modulo by zero");
    return v.as_int() % d.as_int() == 0;
  }
  if (name == "sameas") {
    const Value& o = need(1);
    if (v.kind() != o.kind()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.is_bool() || v.is_int()) return v.as_int() == o.as_int();
    if (v.is_string()) return v.str() == o.str();
    return v.same_object(o);
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, need(1));
  if (name == "ne" || name == "!=") return !equals(v, need(1));
  if (name == "lt" || name == "lessthan" || name == "<") return less(v, need(1), at, "test");
  if (name == "gt" || name == "greaterthan" || name == ">") return less(need(1), v, at, "test");
  if (name == "le" || name == "<=") return !less(need(1), v, at, "test");
  if (name == "ge" || name == ">=") return !less(v, need(1), at, "test");
  if (name == "in") {
    const Value& c = need(1);
    if (c.is_string()) {
      if (!v.is_string()) at.fail("test 'in'", "'in <string>' requires string as left operand");
      return c.str().find(v.str()) != std::string::npos;
    }
    for (const auto& x : iterate(c, at, "test 'in'")) if (equals(x, v)) return true;
    return false;
  }
  at.unsupported("test", "no test named '" + name + "'");
}

inline Value apply_filter(const std::string& name, const Value& v, CallArgs& a, const Site& at) {
  using namespace detail;
  const std::string construct = "filter '" + name + "'";
  const char* fc = construct.c_str();
  if (name == "safe") return v;
  if (name == "string") return Value::string(soft_str(v));
  if (name == "trim") {
    const Value chars = arg(a, 0, "chars", Value::none());
    if (!chars.is_none() && !chars.is_string()) at.fail(fc, "chars must be a string");
    return Value::string(pystr::strip(soft_str(v), chars.is_string() ? &chars.str() : nullptr, true, true));
  }
  if (name == "length" || name == "count") return Value::integer(py_len(v, at, fc));
  if (name == "upper") return Value::string(pystr::upper(soft_str(v)));
  if (name == "lower") return Value::string(pystr::lower(soft_str(v)));
  if (name == "capitalize") return Value::string(pystr::capitalize(soft_str(v)));
  if (name == "title") {
    // Jinja splits before runs of [-\s({\[<] and capitalises each piece.
    const std::string s = soft_str(v);
    std::string out;
    bool start = true;
    for (size_t i = 0; i < s.size();) {
      const size_t st = i;
      const char32_t c = tok::detail::next_cp(s, i);
      const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || tok::detail::is_python_space(c);
      if (sep) { out += s.substr(st, i - st); start = true; continue; }
      tok::detail::append_utf8(out, start ? pystr::cp_upper(c) : pystr::cp_lower(c));
      start = false;
    }
    return Value::string(std::move(out));
  }
  if (name == "replace") {
    const Value from = arg(a, 0, "old"), to = arg(a, 1, "new"), count = arg(a, 2, "count", Value::none());
    if (!from.is_string() || !to.is_string()) at.fail(fc, "takes old and new strings");
    std::string r = pystr::replace(soft_str(v), from.str(), to.str(), count.is_none() ? -1 : count.as_int());
    at.check_size(r.size(), fc);
    return Value::string(std::move(r));
  }
  if (name == "e" || name == "escape") return Value::string(html_escape(soft_str(v)));
  if (name == "default" || name == "d") {
    const Value def = arg(a, 0, "default_value", Value::string(""));
    const bool boolean = truthy(arg(a, 1, "boolean", Value::boolean(false)));
    if (v.is_undefined() || (boolean && !truthy(v))) return def;
    return v;
  }
  if (name == "first") {
    const List l = iterate(v, at, fc);
    return l.empty() ? Value::undefined("No first item, sequence was empty.") : l.front();
  }
  if (name == "last") {
    const List l = iterate(v, at, fc);
    return l.empty() ? Value::undefined("No last item, sequence was empty.") : l.back();
  }
  if (name == "list") return Value::list(iterate(v, at, fc));
  if (name == "items") {
    if (v.is_undefined()) return Value::list();
    if (!v.is_dict()) at.fail(fc, "can only get item pairs from a mapping");
    List out;
    for (const auto& [k, x] : v.map().entries) out.push_back(Value::tuple({k, x}));
    return Value::list(std::move(out));
  }
  if (name == "reverse") {
    if (v.is_string()) {
      const List chars = iterate(v, at, fc);
      std::string out;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += it->str();
      return Value::string(std::move(out));
    }
    List l = iterate(v, at, fc);
    std::reverse(l.begin(), l.end());
    return Value::list(std::move(l));
  }
  if (name == "join") {
    const Value sep = arg(a, 0, "d", Value::string(""));
    const Value attr = arg(a, 1, "attribute", Value::none());
    std::string out;
    bool first = true;
    for (const auto& x : iterate(v, at, fc)) {
      if (!first) out += soft_str(sep);
      first = false;
      out += soft_str(attr.is_none() ? x : attr_path(x, py_str(attr), at));
      at.check_size(out.size(), fc);
    }
    return Value::string(std::move(out));
  }
  if (name == "int") {
    return to_int(v, arg(a, 0, "default", Value::integer(0)), arg(a, 1, "base", Value::integer(10)).as_int());
  }
  if (name == "float") return to_float(v, arg(a, 0, "default", Value::number(0.0)));
  if (name == "abs") {
    if (v.is_int() || v.is_bool()) {
      if (v.as_int() == INT64_MIN) at.fail(fc, "integer overflow");
      return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
    }
    if (v.is_float()) return Value::number(std::fabs(v.as_float()));
    at.fail(fc, "bad operand type for abs(): '" + type_name(v) + "'");
  }
  if (name == "round") {
    const int64_t prec = arg(a, 0, "precision", Value::integer(0)).as_int();
    const Value method = arg(a, 1, "method", Value::string("common"));
    if (!v.is_number() && !v.is_bool()) at.fail(fc, "needs a number");
    if (prec < -300 || prec > 300) at.fail(fc, "precision out of range");
    const double m = std::pow(10.0, double(prec)), x = v.as_float() * m;
    double r;
    if (method.is_string() && method.str() == "ceil") r = std::ceil(x);
    else if (method.is_string() && method.str() == "floor") r = std::floor(x);
    else if (method.is_string() && method.str() == "common") r = std::nearbyint(x);  // Python round(): half to even
    else at.fail(fc, "method must be 'common', 'ceil' or 'floor'");
    return Value::number(r / m);
  }
  if (name == "wordcount") {
    int64_t n = 0;
    bool in = false;
    for (unsigned char c : soft_str(v)) {
      const bool w = std::isalnum(c) || c == '_' || c >= 0x80;
      if (w && !in) ++n;
      in = w;
    }
    return Value::integer(n);
  }
  if (name == "indent") {
    const Value width = arg(a, 0, "width", Value::integer(4));
    const bool first = truthy(arg(a, 1, "first", Value::boolean(false)));
    const bool blank = truthy(arg(a, 2, "blank", Value::boolean(false)));
    std::string ind = width.is_string() ? width.str() : std::string(size_t(std::clamp<int64_t>(width.as_int(), 0, 1 << 16)), ' ');
    const std::vector<std::string> lines = pystr::splitlines(soft_str(v) + "\n");
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out += "\n";
      if (i > 0 && (blank || !lines[i].empty())) out += ind;
      out += lines[i];
      at.check_size(out.size(), fc);
    }
    if (first) out = ind + out;
    return Value::string(std::move(out));
  }
  if (name == "tojson") {
    JsonStyle st;
    const Value indent = arg(a, 1, "indent", Value::none());
    if (indent.is_int()) { st.has_indent = true; st.indent = std::string(size_t(std::clamp<int64_t>(indent.as_int(), 0, 64)), ' '); }
    else if (indent.is_string()) { st.has_indent = true; st.indent = indent.str(); }
    else if (!indent.is_none()) at.fail(fc, "indent must be an integer or a string");
    if (st.has_indent) st.item_sep = ",";
    const Value seps = arg(a, 2, "separators", Value::none());
    if (seps.is_list()) {
      if (seps.items().size() != 2 || !seps.items()[0].is_string() || !seps.items()[1].is_string())
        at.fail(fc, "separators must be (item_separator, key_separator)");
      st.item_sep = seps.items()[0].str();
      st.key_sep = seps.items()[1].str();
    }
    st.sort_keys = truthy(arg(a, 3, "sort_keys", Value::boolean(false)));
    std::string out;
    try {
      out = to_json(v, st);
    } catch (const RenderError& e) {
      at.fail(fc, e.reason());
    }
    if (truthy(arg(a, 0, "ensure_ascii", Value::boolean(false)))) out = json_ascii(out);
    at.check_size(out.size(), fc);
    return Value::string(std::move(out));
  }
  if (name == "map") {
    List out;
    const List items = iterate(v, at, fc);
    if (const Value* attr = a.kwarg("attribute")) {
      const Value* def = a.kwarg("default");
      for (const auto& x : items) {
        Value r = attr_path(x, py_str(*attr), at);
        out.push_back(r.is_undefined() && def ? *def : r);
      }
      return Value::list(std::move(out));
    }
    if (a.pos.empty() || !a.pos[0].is_string()) at.fail(fc, "needs a filter name or attribute=");
    const std::string f = a.pos[0].str();
    if (!has_filter(f)) at.unsupported(fc, "no filter named '" + f + "'");
    CallArgs rest;
    rest.pos.assign(a.pos.begin() + 1, a.pos.end());
    rest.kw = a.kw;
    for (const auto& x : items) out.push_back(apply_filter(f, x, rest, at));
    return Value::list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    const bool by_attr = name.ends_with("attr"), keep = name.starts_with("select");
    size_t k = 0;
    std::string attr;
    if (by_attr) {
      if (a.pos.empty()) at.fail(fc, "needs an attribute name");
      attr = py_str(a.pos[0]);
      k = 1;
    }
    std::string test;
    CallArgs targs;
    if (a.pos.size() > k) {
      if (!a.pos[k].is_string()) at.fail(fc, "the test name must be a string");
      test = a.pos[k].str();
      if (!has_test(test)) at.unsupported(fc, "no test named '" + test + "'");
      targs.pos.assign(a.pos.begin() + long(k) + 1, a.pos.end());
    }
    List out;
    for (const auto& x : iterate(v, at, fc)) {
      const Value sub = by_attr ? attr_path(x, attr, at) : x;
      const bool ok = test.empty() ? truthy(sub) : apply_test(test, sub, targs, at);
      if (ok == keep) out.push_back(x);
    }
    return Value::list(std::move(out));
  }
  if (name == "unique") {
    const bool cs = truthy(arg(a, 0, "case_sensitive", Value::boolean(false)));
    const Value attr = arg(a, 1, "attribute", Value::none());
    List out, seen;
    for (const auto& x : iterate(v, at, fc)) {
      const Value key = lower_if_str(attr.is_none() ? x : attr_path(x, py_str(attr), at), cs);
      bool dup = false;
      for (const auto& s : seen) dup |= equals(s, key);
      if (!dup) { seen.push_back(key); out.push_back(x); }
    }
    return Value::list(std::move(out));
  }
  if (name == "sort" || name == "dictsort" || name == "min" || name == "max") {
    const bool dsort = name == "dictsort";
    const bool reverse = truthy(arg(a, dsort ? 2 : 0, "reverse", Value::boolean(false)));
    const bool cs = truthy(arg(a, dsort ? 0 : (name == "sort" ? 1 : 0), "case_sensitive", Value::boolean(false)));
    const Value attr = dsort ? Value::none() : arg(a, name == "sort" ? 2 : 1, "attribute", Value::none());
    const bool by_value = dsort && py_str(arg(a, 1, "by", Value::string("key"))) == "value";
    List l;
    if (dsort) {
      if (!v.is_dict()) at.fail(fc, "can only sort a mapping");
      for (const auto& [kk, x] : v.map().entries) l.push_back(Value::tuple({kk, x}));
    } else {
      l = iterate(v, at, fc);
    }
    const auto key = [&](const Value& x) {
      if (dsort) return lower_if_str(x.items()[by_value ? 1 : 0], cs);
      return lower_if_str(attr.is_none() ? x : attr_path(x, py_str(attr), at), cs);
    };
    if (name == "min" || name == "max") {
      if (l.empty()) return Value::undefined("No aggregated item, sequence was empty.");
      size_t best = 0;
      for (size_t i = 1; i < l.size(); ++i) {
        const int c = cmp_sort(key(l[i]), key(l[best]), at);
        if (name == "min" ? c < 0 : c > 0) best = i;
      }
      return l[best];
    }
    std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) {
      const int c = cmp_sort(key(x), key(y), at);
      return reverse ? c > 0 : c < 0;
    });
    return Value::list(std::move(l));
  }
  if (name == "sum") {
    const Value attr = arg(a, 0, "attribute", Value::none());
    Value acc = arg(a, 1, "start", Value::integer(0));
    for (const auto& x : iterate(v, at, fc)) {
      const Value y = attr.is_none() ? x : attr_path(x, py_str(attr), at);
      if (!(acc.is_number() || acc.is_bool()) || !(y.is_number() || y.is_bool()))
        at.fail(fc, "unsupported operand types for +: '" + type_name(acc) + "' and '" + type_name(y) + "'");
      if (acc.is_float() || y.is_float()) acc = Value::number(acc.as_float() + y.as_float());
      else {
        int64_t r;
        if (__builtin_add_overflow(acc.as_int(), y.as_int(), &r)) at.fail(fc, "integer overflow");
        acc = Value::integer(r);
      }
    }
    return acc;
  }
  at.unsupported(fc, "no filter named '" + name + "'");
}

}  // namespace fathom::tok::jinja
