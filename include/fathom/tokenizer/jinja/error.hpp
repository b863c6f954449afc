#pragma once
// Errors of the Jinja renderer. Each names the template (its source: a file, a JSON key), the
// position ("line L, column C") and the construct, so a template author can find the spot:
//   SyntaxError       the template text does not parse (unclosed tag, bad expression)
//   UnsupportedError  valid Jinja that this renderer does not implement ({% include %}, a filter...)
//   RenderError       a runtime failure Jinja also raises (undefined attribute, type mismatch)
//   LimitError        a bound that stops a hostile template (recursion, loop steps, output size)
//   RaisedError       the template called raise_exception(msg): it rejects the conversation
#include <string>

#include "fathom/core/error.hpp"

namespace fathom::tok::jinja {

struct Pos {
  int line = 1, col = 1;
  std::string str() const { return "line " + std::to_string(line) + ", column " + std::to_string(col); }
};

struct SyntaxError : FormatError { using FormatError::FormatError; };
struct UnsupportedConstruct : UnsupportedError { using UnsupportedError::UnsupportedError; };
struct RenderError : FormatError { using FormatError::FormatError; };
struct LimitError : RenderError { using RenderError::RenderError; };

// The message given to raise_exception, as the template wrote it.
struct RaisedError : UsageError {
  RaisedError(std::string file, std::string field, std::string message)
      : UsageError(std::move(file), std::move(field), "raise_exception: " + message), message_(std::move(message)) {}
  const std::string& message() const noexcept { return message_; }

 private:
  std::string message_;
};

}  // namespace fathom::tok::jinja
