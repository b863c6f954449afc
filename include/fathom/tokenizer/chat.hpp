#pragma once
// Built-in chat formats, used when a tokenizer has no chat template of its own or when one is
// asked for explicitly (the model's own template is rendered by chat_template.hpp). Each is
// rendered exactly as its family's Jinja chat_template renders it (checked
// byte for byte against transformers' apply_chat_template in tests/test_tokenizer_chat.cpp):
//   ChatML  Qwen2/2.5 (optional default system prompt)        <|im_start|>role\n...<|im_end|>\n
//   Qwen3   ChatML plus Qwen3's <think> handling of assistant turns after the last user query
//   Llama3  <|start_header_id|>role<|end_header_id|>\n\n{content|trim}<|eot_id|>
//   Mistral Mistral-7B-Instruct-v0.1: <s>[INST] u [/INST]a</s>   (no system role)
//   Llama2  Llama-2-chat: <s>[INST] <<SYS>>\ns\n<</SYS>>\n\nu [/INST] a </s>
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/tokenizer/detail/utf8.hpp"

namespace fathom::tok {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant" (Qwen also "tool")
  std::string content;
  // Further fields the model's own template may read, in order: tool_calls, tool_call_id, name,
  // reasoning_content... A "content" here replaces `content` (null: no content). The built-in
  // formats ignore them.
  nlohmann::ordered_json fields = nlohmann::ordered_json::object();
};

enum class ChatFormat { Auto, ChatML, Qwen3, Llama3, Mistral, Llama2 };

inline std::string_view chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::Auto: return "auto";
    case ChatFormat::ChatML: return "chatml";
    case ChatFormat::Qwen3: return "qwen3";
    case ChatFormat::Llama3: return "llama3";
    case ChatFormat::Mistral: return "mistral";
    case ChatFormat::Llama2: return "llama2";
  }
  return "?";
}

// The details of a family's template that change its output.
struct ChatStyle {
  ChatFormat format = ChatFormat::Auto;
  std::string bos, eos;                 // bos_token / eos_token strings of tokenizer_config.json
  std::string default_system;           // ChatML: system prompt inserted when none is given
  bool always_generation_prompt = false;  // early Llama-3 template: header even without the flag
};

namespace detail {

inline std::string_view lstrip_nl(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
inline std::string_view rstrip_nl(std::string_view s) {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

inline void check_alternation(const std::vector<ChatMessage>& msgs, size_t first, std::string_view fmt) {
  for (size_t i = first; i < msgs.size(); ++i) {
    const bool want_user = (i - first) % 2 == 0;
    if ((msgs[i].role == "user") != want_user || (!want_user && msgs[i].role != "assistant"))
      throw UsageError("", "messages[" + std::to_string(i) + "].role",
                       std::string(fmt) + " chat format: roles must alternate user/assistant" +
                           (first ? " after the optional system message" : "") + ", got \"" + msgs[i].role + "\"");
  }
}

inline std::string render_qwen3(const std::vector<ChatMessage>& m, bool gen) {
  std::string out;
  if (!m.empty() && m[0].role == "system") out += "<|im_start|>system\n" + m[0].content + "<|im_end|>\n";
  // The last user turn that is not a tool response: later assistant turns show their reasoning.
  size_t last_query = m.empty() ? 0 : m.size() - 1;
  for (size_t k = m.size(); k-- > 0;) {
    const std::string& c = m[k].content;
    const bool tool_resp = c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
    if (m[k].role == "user" && !tool_resp) { last_query = k; break; }
  }
  for (size_t i = 0; i < m.size(); ++i) {
    const auto& msg = m[i];
    if (msg.role == "user" || (msg.role == "system" && i != 0)) {
      out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
    } else if (msg.role == "assistant") {
      std::string_view content = msg.content, reasoning;
      if (const size_t end = content.rfind("</think>"); end != std::string_view::npos) {
        const std::string_view all = msg.content;
        content = lstrip_nl(all.substr(end + 8));
        std::string_view before = rstrip_nl(all.substr(0, all.find("</think>")));
        if (const size_t open = before.rfind("<think>"); open != std::string_view::npos)
          before = before.substr(open + 7);
        reasoning = lstrip_nl(before);
      }
      if (i > last_query && (i + 1 == m.size() || !reasoning.empty())) {
        out += "<|im_start|>assistant\n<think>\n";
        out += rstrip_nl(lstrip_nl(reasoning));
        out += "\n</think>\n\n";
        out += lstrip_nl(content);
      } else {
        out += "<|im_start|>assistant\n";
        out += content;
      }
      out += "<|im_end|>\n";
    } else if (msg.role == "tool") {
      if (i == 0 || m[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + msg.content + "\n</tool_response>";
      if (i + 1 == m.size() || m[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace detail

inline std::string render_chat(const ChatStyle& st, const std::vector<ChatMessage>& m, bool gen) {
  using detail::python_strip;
  std::string out;
  switch (st.format) {
    case ChatFormat::Qwen3:
      return detail::render_qwen3(m, gen);
    case ChatFormat::ChatML:
      if (!st.default_system.empty() && (m.empty() || m[0].role != "system"))
        out += "<|im_start|>system\n" + st.default_system + "<|im_end|>\n";
      for (const auto& msg : m) out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
      if (gen) out += "<|im_start|>assistant\n";
      return out;
    case ChatFormat::Llama3:
      for (size_t i = 0; i < m.size(); ++i) {
        if (i == 0) out += st.bos;
        out += "<|start_header_id|>" + m[i].role + "<|end_header_id|>\n\n";
        out += python_strip(m[i].content);
        out += "<|eot_id|>";
      }
      if (gen || st.always_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatFormat::Mistral:
      detail::check_alternation(m, 0, "mistral");
      out += st.bos;
      for (const auto& msg : m) {
        if (msg.role == "user") out += "[INST] " + msg.content + " [/INST]";
        else out += msg.content + st.eos;
      }
      return out;
    case ChatFormat::Llama2: {
      const bool sys = !m.empty() && m[0].role == "system";
      const size_t first = sys ? 1 : 0;
      detail::check_alternation(m, first, "llama2");
      for (size_t i = first; i < m.size(); ++i) {
        std::string content = m[i].content;
        if (i == first && sys) content = "<<SYS>>\n" + m[0].content + "\n<</SYS>>\n\n" + content;
        if (m[i].role == "user") out += st.bos + "[INST] " + std::string(python_strip(content)) + " [/INST]";
        else out += " " + std::string(python_strip(content)) + " " + st.eos;
      }
      return out;
    }
    case ChatFormat::Auto:
      break;
  }
  throw UnsupportedError("", "chat_template", "unsupported: no chat format known for this tokenizer");
}

}  // namespace fathom::tok
