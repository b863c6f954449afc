#pragma once
// fathom::tok::jinja::Template: a Jinja2 template as Hugging Face chat templates use it,
// rendered byte for byte as transformers renders it (ImmutableSandboxedEnvironment with
// trim_blocks and lstrip_blocks, loopcontrols, its tojson, raise_exception and strftime_now).
//
//   auto t = jinja::Template::parse(text, "tokenizer_config.json: chat_template");
//   std::string s = t.render(context);   // context: a dict Value, or JSON (ordered_json keeps key order)
//
// The supported subset is listed in docs/tokenizers.md. A template is parsed once and may be
// rendered from many threads at once (render keeps its state on the stack).
#include <memory>
#include <string>
#include <utility>

#include "fathom/tokenizer/detail/utf8.hpp"
#include "fathom/tokenizer/jinja/eval.hpp"
#include "fathom/tokenizer/jinja/parser.hpp"

namespace fathom::tok::jinja {

class Template {
 public:
  // `name` says where the text came from; every error message starts with it.
  static Template parse(std::string source, std::string name, Limits lim = {}) {
    if (!tok::detail::is_valid_utf8(source)) throw SyntaxError(name, "", "the template is not valid UTF-8");
    Template t;
    t.name_ = std::make_shared<const std::string>(std::move(name));
    t.lim_ = lim;
    t.body_ = std::make_shared<const Body>(jinja::parse(std::move(source), *t.name_, ParseLimits{lim.max_parse_depth}));
    return t;
  }

  // context: a Dict of the template's variables.
  std::string render(const Value& context) const {
    if (!context.is_dict()) throw UsageError(*name_, "context", "must be a dict");
    detail::Interpreter in(*name_, lim_);
    return in.run(*body_, context);
  }
  template <class Json>
  std::string render_json(const Json& context) const { return render(from_json(context)); }

  const std::string& name() const { return *name_; }

 private:
  Template() = default;
  std::shared_ptr<const std::string> name_;
  std::shared_ptr<const Body> body_;
  Limits lim_;
};

}  // namespace fathom::tok::jinja
