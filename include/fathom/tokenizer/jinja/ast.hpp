#pragma once
// The parsed template: expressions (Expr) and statements (Node). Every node keeps its position
// for error messages.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fathom/tokenizer/jinja/error.hpp"
#include "fathom/tokenizer/jinja/value.hpp"

namespace fathom::tok::jinja {

struct Expr;
using ExprP = std::unique_ptr<Expr>;

struct Expr {
  enum class K {
    Literal,   // lit
    Name,      // name
    List,      // kids
    Tuple,     // kids (a Python tuple behaves as a list here)
    Dict,      // kids: key, value, key, value...
    Attr,      // kids[0].name
    Item,      // kids[0][kids[1]]
    Slice,     // kids[0][kids[1]:kids[2]:kids[3]] (null kids for omitted parts)
    Call,      // kids[0](kids[1..], kw)
    Filter,    // kids[0] | name(kids[1..], kw); kids[0] null inside {% filter %}
    Test,      // kids[0] is [not] name(kids[1..], kw)
    Neg, Pos, Not,  // kids[0]
    Binary,    // kids[0] op kids[1]: + - * / // % ** ~ == != < > <= >= in "not in"
    And, Or,   // kids[0], kids[1]
    Cond,      // kids[0] if kids[1] else kids[2] (kids[2] may be null)
  };
  K k;
  Pos pos;
  Value lit;
  std::string name;  // Name, Attr, Filter, Test; Binary: the operator
  bool negated = false;  // Test: `is not`
  std::vector<ExprP> kids;
  std::vector<std::pair<std::string, ExprP>> kw;
};

struct Node;
using NodeP = std::unique_ptr<Node>;
using Body = std::vector<NodeP>;

struct Node {
  enum class K { Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Break, Continue, Scope, With };
  K k;
  Pos pos;
  std::string text;                    // Text; Set/SetBlock target name; Macro name
  std::string attr;                    // Set: `ns.attr` target
  std::vector<std::string> targets;    // For / Set unpacking targets
  ExprP expr;                          // Output value; For iterable; Set value; CallBlock call; FilterBlock filter
  ExprP cond;                          // For: `if` filter
  std::vector<std::pair<ExprP, Body>> branches;  // If: (condition, body) for if/elif
  Body body, else_body;
  std::vector<std::pair<std::string, ExprP>> params;  // Macro / CallBlock caller parameters (default or null); With: assignments
  bool recursive = false;
};

}  // namespace fathom::tok::jinja
