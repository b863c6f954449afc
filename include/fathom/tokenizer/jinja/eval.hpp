#pragma once
// Runs a parsed template. Scoping follows Jinja: a for-loop body gets a fresh scope every
// iteration (a `set` there is gone after the loop, which is why templates use namespace()),
// `if` shares its enclosing scope, a macro sees the template's top-level variables and its
// own arguments. Undefined follows Jinja's default Undefined: printing it gives "", testing it
// is false, iterating it is empty, but reading an attribute of it or calling it fails.
//
// Limits stop a hostile template: call depth (macros), evaluation depth, loop iterations in
// total, range() length and output bytes; each is a LimitError naming the template and spot.
#include <ctime>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "fathom/tokenizer/jinja/ast.hpp"
#include "fathom/tokenizer/jinja/filters.hpp"

namespace fathom::tok::jinja {

struct Limits {
  int max_parse_depth = 200;          // nesting of blocks and expressions in the text
  int max_call_depth = 64;            // macro calls inside macro calls
  int max_eval_depth = 512;           // statements and expressions being evaluated at once
  int64_t max_loop_steps = 1'000'000; // for-loop iterations, all loops together
  int64_t max_range = 100'000;        // range() length (Jinja's sandbox limit)
  size_t max_output = size_t(16) << 20;  // bytes of output and of any one string
};

namespace detail {

struct Scope {
  std::vector<std::pair<std::string, Value>> vars;
  Scope* parent = nullptr;

  Value* find(const std::string& n) {
    for (Scope* s = this; s; s = s->parent)
      for (auto& [k, v] : s->vars) if (k == n) return &v;
    return nullptr;
  }
  void set(const std::string& n, Value v) {
    for (auto& [k, old] : vars) if (k == n) { old = std::move(v); return; }
    vars.emplace_back(n, std::move(v));
  }
};

class Interpreter {
 public:
  Interpreter(const std::string& name, const Limits& lim) : name_(name), lim_(lim) {}

  std::string run(const Body& body, const Value& context) {
    Scope globals;
    install_globals(globals);
    Scope root;
    root.parent = &globals;
    root_ = &root;
    if (context.is_dict())
      for (const auto& [k, v] : context.map().entries)
        if (k.is_string()) root.set(k.str(), v);
    std::string out;
    out_ = &out;
    if (exec(body, root) != Flow::Normal) fail(Pos{}, "break/continue", "outside of a loop");
    return out;
  }

 private:
  enum class Flow { Normal, Break, Continue };

  Site site(Pos p) const { return Site{&name_, p, lim_.max_output}; }
  [[noreturn]] void fail(Pos p, const std::string& construct, const std::string& why) const {
    site(p).fail(construct, why);
  }
  [[noreturn]] void limit(Pos p, const std::string& what) const { throw LimitError(name_, p.str(), what); }

  struct Depth {
    Interpreter& in;
    Depth(Interpreter& i, Pos p) : in(i) {
      if (++in.depth_ > in.lim_.max_eval_depth)
        in.limit(p, "evaluation deeper than " + std::to_string(in.lim_.max_eval_depth) + " levels");
    }
    ~Depth() { --in.depth_; }
  };

  void emit(const std::string& s, Pos p) {
    out_->append(s);
    if (out_->size() > lim_.max_output)
      limit(p, "output larger than " + std::to_string(lim_.max_output) + " bytes");
  }

  // Renders `body` into a string of its own (macro bodies, {% set %} blocks, {% filter %}).
  std::string capture(const Body& body, Scope& scope) {
    std::string buf;
    std::string* saved = out_;
    out_ = &buf;
    try {
      const Flow f = exec(body, scope);
      out_ = saved;
      if (f != Flow::Normal) fail(Pos{}, "break/continue", "outside of a loop");
    } catch (...) {
      out_ = saved;
      throw;
    }
    return buf;
  }

  Flow exec(const Body& body, Scope& scope) {
    for (const auto& n : body) {
      const Flow f = exec(*n, scope);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec(const Node& n, Scope& scope) {
    Depth d(*this, n.pos);
    switch (n.k) {
      case Node::K::Text: emit(n.text, n.pos); return Flow::Normal;
      case Node::K::Output: emit(py_str(eval(*n.expr, scope)), n.pos); return Flow::Normal;
      case Node::K::If:
        for (const auto& [c, b] : n.branches)
          if (truthy(eval(*c, scope))) return exec(b, scope);
        return exec(n.else_body, scope);
      case Node::K::For: return exec_for(n, scope);
      case Node::K::Set: {
        if (!n.attr.empty()) {
          Value* ns = scope.find(n.text);
          if (!ns || !ns->is_namespace()) fail(n.pos, "set", "cannot assign attribute '" + n.attr + "' on '" + n.text + "': not a namespace");
          if (n.attr.starts_with("_")) fail(n.pos, "set", "namespace attributes starting with '_' are not allowed");
          ns->map().set(Value::string(n.attr), eval(*n.expr, scope));
          return Flow::Normal;
        }
        assign(n.targets, eval(*n.expr, scope), scope, n.pos, "set");
        return Flow::Normal;
      }
      case Node::K::SetBlock: {
        Value v = Value::string(capture(n.body, scope));
        if (n.expr) v = eval_filter(*n.expr, scope, &v);
        scope.set(n.targets[0], std::move(v));
        return Flow::Normal;
      }
      case Node::K::Macro: scope.set(n.text, make_macro(n, n.text)); return Flow::Normal;
      case Node::K::CallBlock: {
        Value caller = make_macro(n, "caller", &scope);
        emit(py_str(eval_call(*n.expr, scope, &caller)), n.pos);
        return Flow::Normal;
      }
      case Node::K::FilterBlock: {
        Value body = Value::string(capture(n.body, scope));
        emit(py_str(eval_filter(*n.expr, scope, &body)), n.pos);
        return Flow::Normal;
      }
      case Node::K::Break: if (loop_depth_ == 0) fail(n.pos, "break", "outside of a loop"); return Flow::Break;
      case Node::K::Continue: if (loop_depth_ == 0) fail(n.pos, "continue", "outside of a loop"); return Flow::Continue;
      case Node::K::Scope: return exec(n.body, scope);
      case Node::K::With: {
        Scope inner;
        inner.parent = &scope;
        for (const auto& [k, e] : n.params) inner.set(k, eval(*e, scope));
        return exec(n.body, inner);
      }
    }
    return Flow::Normal;
  }

  void assign(const std::vector<std::string>& targets, Value v, Scope& scope, Pos p, const char* construct) {
    if (targets.size() == 1) { scope.set(targets[0], std::move(v)); return; }
    const List items = iterate(v, site(p), construct);
    if (items.size() != targets.size())
      fail(p, construct, "cannot unpack " + std::to_string(items.size()) + " values into " + std::to_string(targets.size()) + " names");
    for (size_t i = 0; i < targets.size(); ++i) scope.set(targets[i], items[i]);
  }

  Flow exec_for(const Node& n, Scope& scope) {
    const List all = iterate(eval(*n.expr, scope), site(n.expr->pos), "for");
    List items;
    if (n.cond) {
      for (const auto& x : all) {
        Scope probe;
        probe.parent = &scope;
        assign(n.targets, x, probe, n.pos, "for");
        if (truthy(eval(*n.cond, probe))) items.push_back(x);
      }
    } else {
      items = all;
    }
    if (items.empty()) return exec(n.else_body, scope);
    const int64_t len = int64_t(items.size());
    ++loop_depth_;
    for (int64_t i = 0; i < len; ++i) {
      if (++steps_ > lim_.max_loop_steps)
        limit(n.pos, "more than " + std::to_string(lim_.max_loop_steps) + " loop iterations");
      Scope body;
      body.parent = &scope;
      assign(n.targets, items[size_t(i)], body, n.pos, "for");
      Value loop = Value::dict();
      auto& m = loop.map();
      m.set(Value::string("index"), Value::integer(i + 1));
      m.set(Value::string("index0"), Value::integer(i));
      m.set(Value::string("revindex"), Value::integer(len - i));
      m.set(Value::string("revindex0"), Value::integer(len - i - 1));
      m.set(Value::string("first"), Value::boolean(i == 0));
      m.set(Value::string("last"), Value::boolean(i == len - 1));
      m.set(Value::string("length"), Value::integer(len));
      m.set(Value::string("depth"), Value::integer(1));
      m.set(Value::string("depth0"), Value::integer(0));
      m.set(Value::string("previtem"), i > 0 ? items[size_t(i - 1)] : Value::undefined("there is no previous item"));
      m.set(Value::string("nextitem"), i + 1 < len ? items[size_t(i + 1)] : Value::undefined("there is no next item"));
      const Site at = site(n.pos);
      m.set(Value::string("cycle"), Value::function("loop.cycle", [i, at](CallArgs& a) {
              if (a.pos.empty()) at.fail("loop.cycle", "no items for cycling given");
              return a.pos[size_t(i) % a.pos.size()];
            }));
      body.set("loop", std::move(loop));
      Flow f;
      try {
        f = exec(n.body, body);
      } catch (...) {
        --loop_depth_;
        throw;
      }
      if (f == Flow::Break) break;
    }
    --loop_depth_;
    return Flow::Normal;
  }

  // A macro (or the `caller` of a {% call %} block, which also sees the caller's scope).
  Value make_macro(const Node& n, const std::string& name, Scope* closure = nullptr) {
    const Node* node = &n;
    const bool is_caller = closure != nullptr;
    return Value::function(name, [this, node, name, closure, is_caller](CallArgs& a) {
      if (++call_depth_ > lim_.max_call_depth) {
        --call_depth_;
        limit(node->pos, "macro calls nested deeper than " + std::to_string(lim_.max_call_depth));
      }
      struct Guard { int& d; ~Guard() { --d; } } guard{call_depth_};
      Scope s;
      s.parent = is_caller ? closure : root_;
      const auto& params = node->params;
      if (a.pos.size() > params.size()) fail(node->pos, "macro '" + name + "'", "too many positional arguments");
      for (size_t i = 0; i < params.size(); ++i) {
        const Value* kwv = a.kwarg(params[i].first);
        if (i < a.pos.size()) {
          if (kwv) fail(node->pos, "macro '" + name + "'", "multiple values for argument '" + params[i].first + "'");
          s.set(params[i].first, a.pos[i]);
        } else if (kwv) {
          s.set(params[i].first, *kwv);
        } else if (params[i].second) {
          s.set(params[i].first, eval(*params[i].second, s));
        } else {
          s.set(params[i].first, Value::undefined("'" + params[i].first + "' is undefined"));
        }
      }
      for (const auto& [k, v] : a.kw) {
        bool known = k == "caller";
        for (const auto& p : params) known |= p.first == k;
        if (!known) fail(node->pos, "macro '" + name + "'", "takes no keyword argument '" + k + "'");
        if (k == "caller") s.set("caller", v);
      }
      const int saved_loops = loop_depth_;
      loop_depth_ = 0;
      std::string r;
      try {
        r = capture(node->body, s);
      } catch (...) {
        loop_depth_ = saved_loops;
        throw;
      }
      loop_depth_ = saved_loops;
      return Value::string(std::move(r));
    });
  }

  void install_globals(Scope& g) {
    g.set("range", Value::function("range", [this](CallArgs& a) {
      const Site at = site(call_pos_);
      for (const auto& x : a.pos) if (!x.is_int() && !x.is_bool()) at.fail("range", "'" + type_name(x) + "' object cannot be interpreted as an integer");
      int64_t start = 0, stop = 0, step = 1;
      if (a.pos.size() == 1) stop = a.pos[0].as_int();
      else if (a.pos.size() == 2 || a.pos.size() == 3) {
        start = a.pos[0].as_int();
        stop = a.pos[1].as_int();
        if (a.pos.size() == 3) step = a.pos[2].as_int();
      } else at.fail("range", "takes 1 to 3 integers");
      if (step == 0) at.fail("range", "arg 3 must not be zero");
      const long double n = step > 0 ? (stop > start ? ((long double)stop - start + step - 1) / step : 0)
                                     : (start > stop ? ((long double)start - stop - step - 1) / -step : 0);
      if (n > (long double)lim_.max_range) limit(call_pos_, "range() longer than " + std::to_string(lim_.max_range));
      List l;
      for (int64_t k = 0; k < int64_t(n); ++k) l.push_back(Value::integer(start + k * step));
      return Value::list(std::move(l));
    }));
    const auto from_kwargs = [this](CallArgs& a, Value out, const char* what) {
      const Site at = site(call_pos_);
      if (a.pos.size() > 1) at.fail(what, "takes at most one positional argument");
      if (!a.pos.empty()) {
        if (!a.pos[0].is_mapping_like()) at.fail(what, "positional argument must be a mapping");
        for (const auto& [k, v] : a.pos[0].map().entries) out.map().set(k, v);
      }
      for (const auto& [k, v] : a.kw) out.map().set(Value::string(k), v);
      if (out.is_namespace())
        for (const auto& [k, v] : out.map().entries)
          if (k.is_string() && k.str().starts_with("_")) at.fail(what, "namespace attributes starting with '_' are not allowed");
      return out;
    };
    g.set("namespace", Value::function("namespace", [from_kwargs](CallArgs& a) { return from_kwargs(a, Value::namespace_(), "namespace"); }));
    g.set("dict", Value::function("dict", [from_kwargs](CallArgs& a) { return from_kwargs(a, Value::dict(), "dict"); }));
    g.set("raise_exception", Value::function("raise_exception", [this](CallArgs& a) -> Value {
      throw RaisedError(name_, call_pos_.str(), a.pos.empty() ? std::string() : py_str(a.pos[0]));
    }));
    g.set("strftime_now", Value::function("strftime_now", [this](CallArgs& a) {
      if (a.pos.size() != 1 || !a.pos[0].is_string()) fail(call_pos_, "strftime_now", "takes one format string");
      const std::time_t t = std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[512];
      const size_t n = std::strftime(buf, sizeof buf, a.pos[0].str().c_str(), &tm);
      if (n == 0 && !a.pos[0].str().empty()) fail(call_pos_, "strftime_now", "formatted date too long or empty");
      return Value::string(std::string(buf, n));
    }));
    for (const char* name : {"cycler", "joiner", "lipsum"}) {
      const std::string nm = name;
      g.set(nm, Value::function(nm, [this, nm](CallArgs&) -> Value {
        site(call_pos_).unsupported(nm, "the global " + nm + "() is not supported");
      }));
    }
  }

  Value eval_filter(const Expr& e, Scope& scope, const Value* operand) {
    // e is a chain Filter(Filter(null, f1), f2): the innermost gets `operand`.
    Value v = e.kids[0] ? (e.kids[0]->k == Expr::K::Filter && operand ? eval_filter(*e.kids[0], scope, operand)
                                                                        : eval(*e.kids[0], scope))
                        : *operand;
    CallArgs a = args(e, scope, 1);
    return apply_filter(e.name, v, a, site(e.pos));
  }

  CallArgs args(const Expr& e, Scope& scope, size_t first) {
    CallArgs a;
    for (size_t i = first; i < e.kids.size(); ++i) a.pos.push_back(eval(*e.kids[i], scope));
    for (const auto& [k, x] : e.kw) a.kw.emplace_back(k, eval(*x, scope));
    return a;
  }

  Value eval_call(const Expr& e, Scope& scope, const Value* caller = nullptr) {
    const Value f = eval(*e.kids[0], scope);
    CallArgs a = args(e, scope, 1);
    if (caller) a.kw.emplace_back("caller", *caller);
    if (f.is_undefined()) site(e.pos).undefined(f, "call");
    if (!f.is_function()) fail(e.pos, "call", "'" + type_name(f) + "' object is not callable");
    const Pos saved = call_pos_;
    call_pos_ = e.pos;
    Value r = f.fn().call(a);
    call_pos_ = saved;
    return r;
  }

  static void slice_bounds(int64_t n, const Value& a, const Value& b, const Value& c, int64_t& start, int64_t& stop,
                           int64_t& step, const Site& at) {
    for (const Value* x : {&a, &b, &c})
      if (!x->is_none() && !x->is_undefined() && !x->is_int() && !x->is_bool())
        at.fail("slice", "slice indices must be integers or None");
    step = (c.is_none() || c.is_undefined()) ? 1 : c.as_int();
    if (step == 0) at.fail("slice", "slice step cannot be zero");
    const auto clamp = [&](const Value& v, int64_t def) {
      if (v.is_none() || v.is_undefined()) return def;
      int64_t i = v.as_int();
      if (i < 0) i += n;
      if (step > 0) return std::clamp<int64_t>(i, 0, n);
      return std::clamp<int64_t>(i, -1, n - 1);
    };
    start = clamp(a, step > 0 ? 0 : n - 1);
    stop = clamp(b, step > 0 ? n : -1);
  }

  Value eval_slice(const Expr& e, Scope& scope) {
    const Value obj = eval(*e.kids[0], scope);
    const Value none = Value::none();
    const Value a = e.kids[1] ? eval(*e.kids[1], scope) : none, b = e.kids[2] ? eval(*e.kids[2], scope) : none,
                c = e.kids[3] ? eval(*e.kids[3], scope) : none;
    const Site at = site(e.pos);
    if (obj.is_undefined()) at.undefined(obj, "slice");
    int64_t start, stop, step;
    if (obj.is_list()) {
      slice_bounds(int64_t(obj.items().size()), a, b, c, start, stop, step, at);
      List out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(obj.items()[size_t(i)]);
      return Value::list(std::move(out));
    }
    if (obj.is_string()) {
      const auto off = detail::cp_offsets(obj.str());
      slice_bounds(int64_t(off.size()) - 1, a, b, c, start, stop, step, at);
      std::string out;
      if (step == 1) return Value::string(start < stop ? obj.str().substr(off[size_t(start)], off[size_t(stop)] - off[size_t(start)]) : "");
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
        out += obj.str().substr(off[size_t(i)], off[size_t(i) + 1] - off[size_t(i)]);
      return Value::string(std::move(out));
    }
    fail(e.pos, "slice", "'" + type_name(obj) + "' object is not subscriptable");
  }

  Value arith(const std::string& op, const Value& x, const Value& y, const Site& at) {
    const std::string construct = "operator '" + op + "'";
    for (const Value* v : {&x, &y}) if (v->is_undefined()) at.undefined(*v, construct);
    const bool xn = x.is_number() || x.is_bool(), yn = y.is_number() || y.is_bool();
    if (xn && yn) {
      const bool fl = x.is_float() || y.is_float();
      const int64_t a = x.as_int(), b = y.as_int();
      const double fa = x.as_float(), fb = y.as_float();
      int64_t r = 0;
      if (op == "+") { if (fl) return Value::number(fa + fb); if (__builtin_add_overflow(a, b, &r)) at.unsupported(construct, "integer overflow beyond 64 bits"); return Value::integer(r); }
      if (op == "-") { if (fl) return Value::number(fa - fb); if (__builtin_sub_overflow(a, b, &r)) at.unsupported(construct, "integer overflow beyond 64 bits"); return Value::integer(r); }
      if (op == "*") { if (fl) return Value::number(fa * fb); if (__builtin_mul_overflow(a, b, &r)) at.unsupported(construct, "integer overflow beyond 64 bits"); return Value::integer(r); }
      if (op == "/") { if (fb == 0) at.fail(construct, "division by zero"); return Value::number(fa / fb); }
      if (op == "//" || op == "%") {
        if (fl) {
          if (fb == 0) at.fail(construct, "float division by zero");
          double m = std::fmod(fa, fb);
          if (m != 0 && ((m < 0) != (fb < 0))) m += fb;
          if (op == "%") return Value::number(m);
          return Value::number(std::floor(fa / fb));
        }
        if (b == 0) at.fail(construct, "integer division or modulo by zero");
        if (a == INT64_MIN && b == -1) at.unsupported(construct, "integer overflow beyond 64 bits");
        int64_t q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) { --q; m += b; }
        return Value::integer(op == "//" ? q : m);
      }
      if (op == "**") {
        if (!fl && b >= 0) {
          int64_t acc = 1, base = a, e = b;
          while (e > 0) {
            if (e & 1) { if (__builtin_mul_overflow(acc, base, &acc)) at.unsupported(construct, "integer overflow beyond 64 bits"); }
            e >>= 1;
            if (e > 0 && __builtin_mul_overflow(base, base, &base)) at.unsupported(construct, "integer overflow beyond 64 bits");
          }
          return Value::integer(acc);
        }
        if (fa == 0 && fb < 0) at.fail(construct, "0.0 cannot be raised to a negative power");
        return Value::number(std::pow(fa, fb));
      }
    }
    if (op == "+") {
      if (x.is_string() && y.is_string()) {
        at.check_size(x.str().size() + y.str().size(), "operator '+'");
        return Value::string(x.str() + y.str());
      }
      if (x.is_list() && y.is_list()) {
        List l = x.items();
        l.insert(l.end(), y.items().begin(), y.items().end());
        return Value::list(std::move(l));
      }
    }
    if (op == "*") {
      const Value* seq = (x.is_string() || x.is_list()) ? &x : (y.is_string() || y.is_list()) ? &y : nullptr;
      const Value* n = seq == &x ? &y : &x;
      if (seq && (n->is_int() || n->is_bool())) {
        const int64_t k = std::max<int64_t>(0, n->as_int());
        if (seq->is_string()) {
          if (k > 0 && seq->str().size() > lim_.max_output / size_t(k)) at.check_size(lim_.max_output + 1, "operator '*'");
          std::string out;
          for (int64_t i = 0; i < k; ++i) out += seq->str();
          return Value::string(std::move(out));
        }
        if (k > 0 && seq->items().size() > size_t(lim_.max_loop_steps) / size_t(k)) limit(at.pos, "list repetition too large");
        List l;
        for (int64_t i = 0; i < k; ++i) l.insert(l.end(), seq->items().begin(), seq->items().end());
        return Value::list(std::move(l));
      }
    }
    if (op == "%" && x.is_string()) at.unsupported(construct, "printf-style string formatting is not supported");
    at.fail(construct, "unsupported operand type(s): '" + type_name(x) + "' and '" + type_name(y) + "'");
  }

  Value eval(const Expr& e, Scope& scope) {
    Depth d(*this, e.pos);
    switch (e.k) {
      case Expr::K::Literal: return e.lit;
      case Expr::K::Name: {
        if (Value* v = scope.find(e.name)) return *v;
        return Value::undefined("'" + e.name + "' is undefined");
      }
      case Expr::K::List: case Expr::K::Tuple: {
        List l;
        for (const auto& k : e.kids) l.push_back(eval(*k, scope));
        return e.k == Expr::K::Tuple ? Value::tuple(std::move(l)) : Value::list(std::move(l));
      }
      case Expr::K::Dict: {
        Value dv = Value::dict();
        for (size_t i = 0; i + 1 < e.kids.size(); i += 2) {
          Value k = eval(*e.kids[i], scope);
          if (k.is_list() || k.is_dict() || k.is_undefined()) fail(e.pos, "dict literal", "unhashable key of type '" + type_name(k) + "'");
          dv.map().set(std::move(k), eval(*e.kids[i + 1], scope));
        }
        return dv;
      }
      case Expr::K::Attr: return get_attr(eval(*e.kids[0], scope), e.name, site(e.pos));
      case Expr::K::Item: {
        const Value obj = eval(*e.kids[0], scope);
        return get_item(obj, eval(*e.kids[1], scope), site(e.pos));
      }
      case Expr::K::Slice: return eval_slice(e, scope);
      case Expr::K::Call: return eval_call(e, scope);
      case Expr::K::Filter: return eval_filter(e, scope, nullptr);
      case Expr::K::Test: {
        const Value v = eval(*e.kids[0], scope);
        CallArgs a = args(e, scope, 1);
        return Value::boolean(apply_test(e.name, v, a, site(e.pos)) != e.negated);
      }
      case Expr::K::Neg: case Expr::K::Pos: {
        const Value v = eval(*e.kids[0], scope);
        if (v.is_undefined()) site(e.pos).undefined(v, "unary operator");
        if (v.is_float()) return Value::number(e.k == Expr::K::Neg ? -v.as_float() : v.as_float());
        if (v.is_int() || v.is_bool()) {
          if (e.k == Expr::K::Pos) return Value::integer(v.as_int());
          if (v.as_int() == INT64_MIN) site(e.pos).unsupported("unary '-'", "integer overflow beyond 64 bits");
          return Value::integer(-v.as_int());
        }
        fail(e.pos, "unary operator", "bad operand type: '" + type_name(v) + "'");
      }
      case Expr::K::Not: return Value::boolean(!truthy(eval(*e.kids[0], scope)));
      case Expr::K::And: {
        Value a = eval(*e.kids[0], scope);
        return truthy(a) ? eval(*e.kids[1], scope) : a;
      }
      case Expr::K::Or: {
        Value a = eval(*e.kids[0], scope);
        return truthy(a) ? a : eval(*e.kids[1], scope);
      }
      case Expr::K::Cond:
        if (truthy(eval(*e.kids[1], scope))) return eval(*e.kids[0], scope);
        return e.kids[2] ? eval(*e.kids[2], scope) : Value::undefined("the inline if-expression evaluated to false and no else section was defined");
      case Expr::K::Binary: {
        const Value x = eval(*e.kids[0], scope);
        const Value y = eval(*e.kids[1], scope);
        const std::string& op = e.name;
        const Site at = site(e.pos);
        if (op == "==") return Value::boolean(equals(x, y));
        if (op == "!=") return Value::boolean(!equals(x, y));
        if (op == "<" || op == ">" || op == "<=" || op == ">=") {
          for (const Value* v : {&x, &y}) if (v->is_undefined()) at.undefined(*v, "comparison");
          const char* c = "comparison";
          if (op == "<") return Value::boolean(less(x, y, at, c));
          if (op == ">") return Value::boolean(less(y, x, at, c));
          if (op == "<=") return Value::boolean(!less(y, x, at, c));
          return Value::boolean(!less(x, y, at, c));
        }
        if (op == "in" || op == "not in") {
          bool found = false;
          if (y.is_string()) {
            if (!x.is_string()) at.fail("operator 'in'", "'in <string>' requires string as left operand, not " + type_name(x));
            found = y.str().find(x.str()) != std::string::npos;
          } else if (y.is_mapping_like()) {
            found = y.map().find(x) != nullptr;
          } else {
            for (const auto& v : iterate(y, at, "operator 'in'")) if (equals(v, x)) { found = true; break; }
          }
          return Value::boolean(found == (op == "in"));
        }
        if (op == "~") {
          std::string s = py_str(x) + py_str(y);
          at.check_size(s.size(), "operator '~'");
          return Value::string(std::move(s));
        }
        return arith(op, x, y, at);
      }
    }
    fail(e.pos, "expression", "unknown node");
  }

  const std::string& name_;
  Limits lim_;
  std::string* out_ = nullptr;
  Scope* root_ = nullptr;
  int depth_ = 0, call_depth_ = 0, loop_depth_ = 0;
  int64_t steps_ = 0;
  Pos call_pos_;
};

}  // namespace detail

}  // namespace fathom::tok::jinja
