#pragma once
// Tokens -> AST, with Jinja2's grammar and operator precedence (loosest first):
//   x if c else y  <  or  <  and  <  not  <  comparisons, in, not in  <  + -  <  ~  <  * / // %
//   <  **  <  unary - +  <  primary with .attr [item] [a:b:c] (call) | filter  is test
// Unknown filters and tests fail at parse time, as Jinja does when it compiles a template.
#include <string>
#include <utility>
#include <vector>

#include "fathom/tokenizer/jinja/ast.hpp"
#include "fathom/tokenizer/jinja/filters.hpp"
#include "fathom/tokenizer/jinja/lexer.hpp"

namespace fathom::tok::jinja {

struct ParseLimits {
  int max_depth = 200;  // nesting of blocks and expressions
};

namespace detail {

class Parser {
 public:
  Parser(std::vector<Token> toks, std::string name, ParseLimits lim)
      : t_(std::move(toks)), name_(std::move(name)), lim_(lim) {}

  Body parse() {
    Body b = parse_body({});
    if (cur().type != Tok::Eof) fail(cur().pos, "template", "unexpected tag");
    return b;
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(i_ + n, t_.size() - 1)]; }
  Token take() { return t_[i_ < t_.size() - 1 ? i_++ : i_]; }

  [[noreturn]] void fail(Pos p, const std::string& construct, const std::string& why) const {
    throw SyntaxError(name_, p.str(), construct + ": " + why);
  }
  [[noreturn]] void unsupported(Pos p, const std::string& construct, const std::string& why) const {
    throw UnsupportedConstruct(name_, p.str(), construct + ": " + why);
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  void expect_op(const char* op, const char* construct) {
    if (!is_op(op)) fail(cur().pos, construct, std::string("expected '") + op + "', got " + describe(cur()));
    ++i_;
  }
  void expect_block_end(const char* construct) {
    if (cur().type != Tok::BlockEnd) fail(cur().pos, construct, "expected end of tag '%}', got " + describe(cur()));
    ++i_;
  }
  std::string expect_name(const char* construct) {
    if (cur().type != Tok::Name) fail(cur().pos, construct, "expected a name, got " + describe(cur()));
    return take().text;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Eof: return "end of template";
      case Tok::BlockEnd: return "'%}'";
      case Tok::VarEnd: return "'}}'";
      case Tok::Text: return "text";
      case Tok::String: return "a string";
      default: return "'" + t.text + "'";
    }
  }

  struct DepthGuard {
    Parser& p;
    DepthGuard(Parser& pp, Pos at) : p(pp) {
      if (++p.depth_ > p.lim_.max_depth)
        throw LimitError(p.name_, at.str(), "nesting deeper than " + std::to_string(p.lim_.max_depth) + " levels");
    }
    ~DepthGuard() { --p.depth_; }
  };

  // Statements until a block tag whose keyword is one of `ends` (left unconsumed).
  Body parse_body(const std::vector<std::string>& ends) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Eof) {
        if (!ends.empty())
          fail(open_.empty() ? t.pos : open_.back(), "block",
               "missing {% " + ends.back() + " %} before the end of the template");
        return body;
      }
      if (t.type == Tok::Text) {
        auto n = std::make_unique<Node>();
        n->k = Node::K::Text;
        n->pos = t.pos;
        n->text = t.text;
        body.push_back(std::move(n));
        ++i_;
      } else if (t.type == Tok::VarBegin) {
        auto n = std::make_unique<Node>();
        n->k = Node::K::Output;
        n->pos = t.pos;
        ++i_;
        n->expr = parse_tuple(true);
        if (cur().type != Tok::VarEnd) fail(cur().pos, "expression", "expected '}}', got " + describe(cur()));
        ++i_;
        body.push_back(std::move(n));
      } else if (t.type == Tok::BlockBegin) {
        const Token& kw = peek();
        if (kw.type != Tok::Name) fail(kw.pos, "block tag", "expected a statement keyword, got " + describe(kw));
        for (const auto& e : ends) if (kw.text == e) return body;
        ++i_;
        body.push_back(parse_statement());
      } else {
        fail(t.pos, "template", "unexpected " + describe(t));
      }
    }
  }

  NodeP parse_statement() {
    const Token kw = take();
    DepthGuard g(*this, kw.pos);
    open_.push_back(kw.pos);
    struct Pop { std::vector<Pos>& v; ~Pop() { v.pop_back(); } } pop{open_};
    auto n = std::make_unique<Node>();
    n->pos = kw.pos;
    const std::string& k = kw.text;
    if (k == "if") {
      n->k = Node::K::If;
      ExprP c = parse_tuple(false);
      expect_block_end("if");
      Body b = parse_body({"elif", "else", "endif"});
      n->branches.emplace_back(std::move(c), std::move(b));
      while (true) {
        ++i_;  // {%
        const std::string e = take().text;
        if (e == "elif") {
          ExprP c2 = parse_tuple(false);
          expect_block_end("elif");
          Body b2 = parse_body({"elif", "else", "endif"});
          n->branches.emplace_back(std::move(c2), std::move(b2));
        } else if (e == "else") {
          expect_block_end("else");
          n->else_body = parse_body({"endif"});
        } else {
          expect_block_end("endif");
          break;
        }
      }
    } else if (k == "for") {
      n->k = Node::K::For;
      n->targets = parse_targets("for");
      if (!is_name("in")) fail(cur().pos, "for", "expected 'in', got " + describe(cur()));
      ++i_;
      n->expr = parse_tuple(false, /*with_cond=*/false);
      if (is_name("if")) { ++i_; n->cond = parse_expression(); }
      if (is_name("recursive")) unsupported(cur().pos, "for", "recursive loops are not supported");
      expect_block_end("for");
      n->body = parse_body({"else", "endfor"});
      ++i_;
      if (take().text == "else") {
        expect_block_end("else");
        n->else_body = parse_body({"endfor"});
        i_ += 2;
      }
      expect_block_end("endfor");
    } else if (k == "set") {
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "." ) {
        n->k = Node::K::Set;
        n->text = take().text;
        ++i_;
        n->attr = expect_name("set");
        expect_op("=", "set");
        n->expr = parse_tuple(false);
        expect_block_end("set");
      } else {
        n->targets = parse_targets("set");
        if (is_op("=")) {
          n->k = Node::K::Set;
          ++i_;
          n->expr = parse_tuple(false);
          expect_block_end("set");
        } else {
          if (n->targets.size() != 1) fail(cur().pos, "set", "a block set takes one name");
          n->k = Node::K::SetBlock;
          if (is_op("|")) n->expr = parse_filter_chain(nullptr);
          expect_block_end("set");
          n->body = parse_body({"endset"});
          i_ += 2;
          expect_block_end("endset");
        }
      }
    } else if (k == "macro") {
      n->k = Node::K::Macro;
      n->text = expect_name("macro");
      n->params = parse_params("macro");
      expect_block_end("macro");
      n->body = parse_body({"endmacro"});
      i_ += 2;
      if (cur().type == Tok::Name) ++i_;  // {% endmacro name %}
      expect_block_end("endmacro");
    } else if (k == "call") {
      n->k = Node::K::CallBlock;
      if (is_op("(")) n->params = parse_params("call");
      n->expr = parse_expression();
      if (n->expr->k != Expr::K::Call) fail(n->pos, "call", "expected a macro call");
      expect_block_end("call");
      n->body = parse_body({"endcall"});
      i_ += 2;
      expect_block_end("endcall");
    } else if (k == "filter") {
      n->k = Node::K::FilterBlock;
      n->expr = parse_filter_chain(nullptr, /*first_bar=*/false);
      expect_block_end("filter");
      n->body = parse_body({"endfilter"});
      i_ += 2;
      expect_block_end("endfilter");
    } else if (k == "break" || k == "continue") {
      n->k = k == "break" ? Node::K::Break : Node::K::Continue;
      expect_block_end(k.c_str());
    } else if (k == "generation") {
      // transformers' {% generation %} marks assistant text for masks; it renders its body.
      n->k = Node::K::Scope;
      expect_block_end("generation");
      n->body = parse_body({"endgeneration"});
      i_ += 2;
      expect_block_end("endgeneration");
    } else if (k == "with") {
      n->k = Node::K::With;
      while (cur().type != Tok::BlockEnd) {
        std::string nm = expect_name("with");
        expect_op("=", "with");
        n->params.emplace_back(std::move(nm), parse_expression());
        if (is_op(",")) ++i_;
        else break;
      }
      expect_block_end("with");
      n->body = parse_body({"endwith"});
      i_ += 2;
      expect_block_end("endwith");
    } else if (k == "include" || k == "import" || k == "from" || k == "extends" || k == "block" ||
               k == "autoescape" || k == "do") {
      unsupported(kw.pos, k, "{% " + k + " %} is not supported (a chat template is one self-contained text)");
    } else {
      fail(kw.pos, "block tag", "unknown statement '" + k + "'");
    }
    return n;
  }

  std::vector<std::string> parse_targets(const char* construct) {
    std::vector<std::string> out;
    const bool paren = is_op("(");
    if (paren) ++i_;
    out.push_back(expect_name(construct));
    while (is_op(",")) {
      ++i_;
      if (cur().type != Tok::Name) break;
      out.push_back(expect_name(construct));
    }
    if (paren) expect_op(")", construct);
    return out;
  }

  std::vector<std::pair<std::string, ExprP>> parse_params(const char* construct) {
    std::vector<std::pair<std::string, ExprP>> out;
    expect_op("(", construct);
    while (!is_op(")")) {
      std::string nm = expect_name(construct);
      ExprP def;
      if (is_op("=")) { ++i_; def = parse_expression(); }
      out.emplace_back(std::move(nm), std::move(def));
      if (!is_op(",")) break;
      ++i_;
    }
    expect_op(")", construct);
    return out;
  }

  int64_t to_int64(const Token& t) const {
    int64_t v = 0;
    for (char c : t.text)
      if (__builtin_mul_overflow(v, int64_t(10), &v) || __builtin_add_overflow(v, int64_t(c - '0'), &v))
        unsupported(t.pos, "integer literal", "beyond 64 bits");
    return v;
  }

  ExprP make(Expr::K k, Pos p) {
    auto e = std::make_unique<Expr>();
    e->k = k;
    e->pos = p;
    return e;
  }

  // expression [, expression ...] -> a tuple when there is a comma.
  ExprP parse_tuple(bool /*output*/, bool with_cond = true) {
    const Pos p = cur().pos;
    ExprP first = with_cond ? parse_expression() : parse_or();
    if (!is_op(",")) return first;
    auto t = make(Expr::K::Tuple, p);
    t->kids.push_back(std::move(first));
    while (is_op(",")) {
      ++i_;
      if (cur().type == Tok::BlockEnd || cur().type == Tok::VarEnd || is_name("if")) break;
      t->kids.push_back(with_cond ? parse_expression() : parse_or());
    }
    return t;
  }

  ExprP parse_expression() {
    DepthGuard g(*this, cur().pos);
    ExprP e = parse_or();
    while (is_name("if")) {
      const Pos p = take().pos;
      auto c = make(Expr::K::Cond, p);
      c->kids.push_back(std::move(e));
      c->kids.push_back(parse_or());
      if (is_name("else")) { ++i_; c->kids.push_back(parse_expression()); }
      else c->kids.push_back(nullptr);
      e = std::move(c);
    }
    return e;
  }

  ExprP binary(Expr::K k, ExprP a, ExprP b, Pos p, std::string op = {}) {
    auto e = make(k, p);
    e->name = std::move(op);
    e->kids.push_back(std::move(a));
    e->kids.push_back(std::move(b));
    return e;
  }

  ExprP parse_or() {
    ExprP e = parse_and();
    while (is_name("or")) { const Pos p = take().pos; e = binary(Expr::K::Or, std::move(e), parse_and(), p); }
    return e;
  }
  ExprP parse_and() {
    ExprP e = parse_not();
    while (is_name("and")) { const Pos p = take().pos; e = binary(Expr::K::And, std::move(e), parse_not(), p); }
    return e;
  }
  ExprP parse_not() {
    if (is_name("not")) {
      DepthGuard g(*this, cur().pos);
      auto e = make(Expr::K::Not, take().pos);
      e->kids.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprP parse_compare() {
    ExprP e = parse_math1();
    while (true) {
      const Pos p = cur().pos;
      std::string op;
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == ">" || cur().text == "<=" || cur().text == ">=")) {
        op = take().text;
      } else if (is_name("in")) {
        ++i_;
        op = "in";
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        i_ += 2;
        op = "not in";
      } else {
        return e;
      }
      // A chain a < b < c is (a < b) and (b < c) in Python; chat templates do not chain, so
      // it is evaluated left to right like other binary operators.
      e = binary(Expr::K::Binary, std::move(e), parse_math1(), p, op);
    }
  }
  ExprP parse_math1() {
    ExprP e = parse_concat();
    while (is_op("+") || is_op("-")) { const Token o = take(); e = binary(Expr::K::Binary, std::move(e), parse_concat(), o.pos, o.text); }
    return e;
  }
  ExprP parse_concat() {
    ExprP e = parse_math2();
    while (is_op("~")) { const Token o = take(); e = binary(Expr::K::Binary, std::move(e), parse_math2(), o.pos, "~"); }
    return e;
  }
  ExprP parse_math2() {
    ExprP e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token o = take();
      e = binary(Expr::K::Binary, std::move(e), parse_pow(), o.pos, o.text);
    }
    return e;
  }
  ExprP parse_pow() {
    ExprP e = parse_unary(true);
    while (is_op("**")) { const Token o = take(); e = binary(Expr::K::Binary, std::move(e), parse_unary(true), o.pos, "**"); }
    return e;
  }
  ExprP parse_unary(bool with_filter) {
    DepthGuard g(*this, cur().pos);
    ExprP e;
    if (is_op("-") || is_op("+")) {
      const Token o = take();
      e = make(o.text == "-" ? Expr::K::Neg : Expr::K::Pos, o.pos);
      e->kids.push_back(parse_unary(false));
    } else {
      e = parse_postfix(parse_primary());
    }
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprP parse_primary() {
    const Token t = cur();
    switch (t.type) {
      case Tok::Name: {
        ++i_;
        auto e = make(Expr::K::Literal, t.pos);
        if (t.text == "true" || t.text == "True") e->lit = Value::boolean(true);
        else if (t.text == "false" || t.text == "False") e->lit = Value::boolean(false);
        else if (t.text == "none" || t.text == "None") e->lit = Value::none();
        else { e->k = Expr::K::Name; e->name = t.text; }
        return e;
      }
      case Tok::String: {
        std::string s;
        while (cur().type == Tok::String) s += take().text;  // adjacent literals concatenate
        auto e = make(Expr::K::Literal, t.pos);
        e->lit = Value::string(std::move(s));
        return e;
      }
      case Tok::Int: {
        ++i_;
        auto e = make(Expr::K::Literal, t.pos);
        e->lit = Value::integer(to_int64(t));
        return e;
      }
      case Tok::Float: {
        ++i_;
        auto e = make(Expr::K::Literal, t.pos);
        e->lit = Value::number(std::strtod(t.text.c_str(), nullptr));
        return e;
      }
      case Tok::Op:
        if (t.text == "(") {
          ++i_;
          if (is_op(")")) { ++i_; return make(Expr::K::Tuple, t.pos); }
          ExprP e = parse_tuple(false);
          expect_op(")", "parenthesis");
          return e;
        }
        if (t.text == "[") {
          ++i_;
          auto e = make(Expr::K::List, t.pos);
          while (!is_op("]")) {
            e->kids.push_back(parse_expression());
            if (!is_op(",")) break;
            ++i_;
          }
          expect_op("]", "list literal");
          return e;
        }
        if (t.text == "{") {
          ++i_;
          auto e = make(Expr::K::Dict, t.pos);
          while (!is_op("}")) {
            e->kids.push_back(parse_expression());
            expect_op(":", "dict literal");
            e->kids.push_back(parse_expression());
            if (!is_op(",")) break;
            ++i_;
          }
          expect_op("}", "dict literal");
          return e;
        }
        break;
      default:
        break;
    }
    fail(t.pos, "expression", "unexpected " + describe(t));
  }

  ExprP parse_postfix(ExprP e) {
    while (true) {
      const Pos p = cur().pos;
      if (is_op(".")) {
        ++i_;
        auto a = make(Expr::K::Attr, p);
        if (cur().type == Tok::Name) a->name = take().text;
        else if (cur().type == Tok::Int) {  // x.0 is x[0]
          a->k = Expr::K::Item;
          auto idx = make(Expr::K::Literal, cur().pos);
          idx->lit = Value::integer(to_int64(take()));
          a->kids.push_back(std::move(e));
          a->kids.push_back(std::move(idx));
          e = std::move(a);
          continue;
        } else fail(cur().pos, "attribute", "expected a name after '.', got " + describe(cur()));
        a->kids.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        ++i_;
        ExprP parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) parts[k] = parse_expression();
          if (k < 2 && is_op(":")) { ++i_; slice = true; continue; }
          break;
        }
        expect_op("]", "subscript");
        auto s = make(slice ? Expr::K::Slice : Expr::K::Item, p);
        s->kids.push_back(std::move(e));
        if (!slice && !parts[0]) fail(p, "subscript", "empty subscript");
        if (slice) for (auto& x : parts) s->kids.push_back(std::move(x));
        else s->kids.push_back(std::move(parts[0]));
        e = std::move(s);
      } else if (is_op("(")) {
        auto c = make(Expr::K::Call, p);
        c->kids.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  void parse_call_args(Expr& call) {
    expect_op("(", "call");
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) unsupported(cur().pos, "call", "*args / **kwargs are not supported");
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        std::string nm = take().text;
        ++i_;
        call.kw.emplace_back(std::move(nm), parse_expression());
      } else {
        if (!call.kw.empty()) fail(cur().pos, "call", "positional argument after a keyword argument");
        call.kids.push_back(parse_expression());
      }
      if (!is_op(",")) break;
      ++i_;
    }
    expect_op(")", "call");
  }

  ExprP parse_filter_expr(ExprP e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter_chain(std::move(e));
      } else if (is_name("is")) {
        const Pos p = take().pos;
        auto t = make(Expr::K::Test, p);
        if (is_name("not")) { ++i_; t->negated = true; }
        t->name = expect_name("test");
        if (!has_test(t->name)) unsupported(p, "test", "no test named '" + t->name + "'");
        t->kids.push_back(std::move(e));
        if (is_op("(")) {
          parse_call_args(*t);
        } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                    cur().type == Tok::Float || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") && !is_name("is")) {
          t->kids.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else if (is_op("(")) {
        auto c = make(Expr::K::Call, cur().pos);
        c->kids.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  // | name[(args)] | name ... (operand may be null: {% filter %} / {% set x | f %}).
  ExprP parse_filter_chain(ExprP e, bool first_bar = true) {
    bool need_bar = first_bar;
    do {
      if (need_bar) expect_op("|", "filter");
      need_bar = true;
      const Pos p = cur().pos;
      std::string nm = expect_name("filter");
      if (!has_filter(nm)) unsupported(p, "filter", "no filter named '" + nm + "'");
      auto f = make(Expr::K::Filter, p);
      f->name = std::move(nm);
      f->kids.push_back(std::move(e));
      if (is_op("(")) parse_call_args(*f);
      e = std::move(f);
    } while (is_op("|"));
    return e;
  }

  std::vector<Token> t_;
  std::string name_;
  ParseLimits lim_;
  size_t i_ = 0;
  int depth_ = 0;
  std::vector<Pos> open_;  // keywords of the blocks being parsed (for "missing {% end... %}")
};

}  // namespace detail

inline Body parse(std::string source, const std::string& name, ParseLimits lim = {}) {
  return detail::Parser(lex(std::move(source), name), name, lim).parse();
}

}  // namespace fathom::tok::jinja
