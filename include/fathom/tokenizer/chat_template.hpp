#pragma once
// A model's own chat template (Jinja text from chat_template.jinja, tokenizer_config.json or
// GGUF metadata) rendered as transformers' apply_chat_template(tokenize=False) renders it:
//   - None-valued message fields are dropped (transformers drops them before rendering);
//   - reasoning_content / thinking / reasoning are aliased like transformers does: a message
//     with any of them gets "thinking" first and "reasoning_content" last;
//   - the template sees the tokenizer's special tokens (bos_token, eos_token, unk_token, ...),
//     then the extra keyword arguments (which override them), messages, tools, documents and
//     add_generation_prompt;
//   - an empty conversation is an error.
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/tokenizer/chat.hpp"
#include "fathom/tokenizer/jinja/template.hpp"

namespace fathom::tok {

using ordered_json = nlohmann::ordered_json;

struct ChatOptions {
  bool add_generation_prompt = true;
  ordered_json tools;                              // null: none; else a list of JSON-schema tools
  ordered_json documents;                          // null: none; else a list of {title, text}
  ordered_json kwargs = ordered_json::object();    // extra variables: enable_thinking, date_string...
};

// [{role, content, ...fields}] of ChatMessages (fields may replace content, e.g. null).
inline ordered_json chat_messages_json(const std::vector<ChatMessage>& msgs) {
  ordered_json out = ordered_json::array();
  for (const auto& m : msgs) {
    ordered_json j = ordered_json::object();
    j["role"] = m.role;
    j["content"] = m.content;
    if (!m.fields.is_null()) {
      if (!m.fields.is_object()) throw UsageError("", "ChatMessage.fields", "must be a JSON object");
      for (auto it = m.fields.begin(); it != m.fields.end(); ++it) j[it.key()] = it.value();
    }
    out.push_back(std::move(j));
  }
  return out;
}

// The special-token variables a template sees, in transformers' order.
using SpecialTokens = std::vector<std::pair<std::string, std::string>>;

class ChatTemplate {
 public:
  // `source` names where the text came from ("<dir>/chat_template.jinja", "<file>: chat_template").
  static ChatTemplate parse(std::string text, std::string source, jinja::Limits lim = {}) {
    ChatTemplate c;
    c.t_ = std::make_shared<jinja::Template>(jinja::Template::parse(std::move(text), std::move(source), lim));
    return c;
  }

  const std::string& source() const { return t_->name(); }

  std::string render(const ordered_json& messages, const ChatOptions& o, const SpecialTokens& special) const {
    if (!messages.is_array()) throw UsageError(source(), "messages", "must be a list of messages");
    if (messages.empty()) throw UsageError(source(), "messages", "cannot apply a chat template to an empty conversation");
    ordered_json msgs = ordered_json::array();
    for (size_t i = 0; i < messages.size(); ++i) {
      const auto& m = messages[i];
      if (!m.is_object()) throw UsageError(source(), "messages[" + std::to_string(i) + "]", "a message must be a JSON object");
      ordered_json clean = ordered_json::object();
      for (auto it = m.begin(); it != m.end(); ++it)
        if (!it.value().is_null()) clean[it.key()] = it.value();
      msgs.push_back(alias_reasoning(std::move(clean)));
    }
    using jinja::Value;
    Value ctx = Value::dict();
    auto& d = ctx.map();
    for (const auto& [k, v] : special) d.set(Value::string(k), Value::string(v));
    if (!o.kwargs.is_null()) {
      if (!o.kwargs.is_object()) throw UsageError(source(), "kwargs", "must be a JSON object");
      for (auto it = o.kwargs.begin(); it != o.kwargs.end(); ++it) d.set(Value::string(it.key()), jinja::from_json(it.value()));
    }
    d.set(Value::string("messages"), jinja::from_json(msgs));
    d.set(Value::string("tools"), jinja::from_json(o.tools));
    d.set(Value::string("documents"), jinja::from_json(o.documents));
    d.set(Value::string("add_generation_prompt"), Value::boolean(o.add_generation_prompt));
    return t_->render(ctx);
  }

 private:
  // transformers' _alias_reasoning_fields: {"thinking": r, **message, "reasoning_content": r}.
  static ordered_json alias_reasoning(ordered_json m) {
    const ordered_json* r = nullptr;
    for (const char* k : {"reasoning_content", "thinking", "reasoning"})
      if (m.contains(k) && !m[k].is_null()) { r = &m[k]; break; }
    if (!r) return m;
    const ordered_json reasoning = *r;
    ordered_json out = ordered_json::object();
    out["thinking"] = reasoning;
    for (auto it = m.begin(); it != m.end(); ++it) out[it.key()] = it.value();
    out["reasoning_content"] = reasoning;
    return out;
  }

  std::shared_ptr<const jinja::Template> t_;
};

}  // namespace fathom::tok
