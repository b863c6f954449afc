// tokenize: encode text with a Hugging Face tokenizer folder, like llama.cpp's llama-tokenize.
//
//   tokenize --tokenizer ../shared/tokenizers/qwen3 < text.txt          -> [9707, 11, 1879]
//   tokenize --tokenizer DIR text.txt --no-special                       (no bos/eos)
//   tokenize --tokenizer DIR --chat messages.json                        (chat format + generation prompt)
//   tokenize --tokenizer DIR --chat messages.json --show-text            (the rendered prompt instead)
//   tokenize --tokenizer DIR --decode ids.json                           (JSON array of ids -> text)
//
// Input comes from the file argument or stdin. --chat expects [{"role": ..., "content": ...}, ...].
// With --decode, --no-special drops special tokens from the text.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "fathom/core/text_file.hpp"
#include "fathom/tokenizer/tokenizer.hpp"

namespace {

std::string read_input(const std::string& path) {
  if (path.empty() || path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  return fathom::read_text_file(path);
}

nlohmann::json parse_json_input(const std::string& text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw fathom::UsageError(source, "", std::string("malformed JSON: ") + e.what());
  }
}

fathom::tok::ChatFormat parse_format(const std::string& s) {
  using F = fathom::tok::ChatFormat;
  for (F f : {F::Auto, F::ChatML, F::Qwen3, F::Llama3, F::Mistral, F::Llama2})
    if (fathom::tok::chat_format_name(f) == s) return f;
  throw fathom::UsageError("", "--format", "unknown chat format \"" + s + "\" (auto, chatml, qwen3, llama3, mistral, llama2)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Encode text (or a chat) into token ids with a Hugging Face tokenizer.json, or decode ids."};
  std::string dir, input, format = "auto";
  std::string kwargs, tools;
  bool chat = false, decode = false, no_special = false, show_text = false, no_gen_prompt = false;
  app.add_option("-t,--tokenizer", dir, "folder with tokenizer.json (+ tokenizer_config.json)")->required();
  app.add_option("input", input, "input file (default: stdin)");
  app.add_flag("--chat", chat, "input is a JSON list of messages; applies the chat template (with generation prompt)");
  app.add_option("--format", format, "chat format: auto (the model's own template, else its family's built-in format), "
                 "or a built-in one: chatml, qwen3, llama3, mistral, llama2");
  app.add_option("--kwargs", kwargs, "with --chat: extra template variables as JSON, e.g. '{\"enable_thinking\": false}'");
  app.add_option("--tools", tools, "with --chat: JSON file with a list of tool schemas");
  app.add_flag("--no-generation-prompt", no_gen_prompt, "with --chat: no assistant header at the end");
  app.add_flag("--show-text", show_text, "with --chat: print the rendered prompt instead of ids");
  app.add_flag("--decode", decode, "input is a JSON array of ids; prints the text");
  app.add_flag("--no-special", no_special, "do not add bos/eos (encode) / drop special tokens (decode)");
  CLI11_PARSE(app, argc, argv);

  const std::string source = input.empty() ? "<stdin>" : input;
  try {
    const auto tok = fathom::tok::Tokenizer::from_dir(dir);
    const std::string text = read_input(input);
    if (decode) {
      const auto j = parse_json_input(text, source);
      if (!j.is_array()) throw fathom::UsageError(source, "", "expected a JSON array of token ids");
      std::vector<int32_t> ids;
      for (size_t i = 0; i < j.size(); ++i) {
        if (!j[i].is_number_integer()) throw fathom::UsageError(source, "[" + std::to_string(i) + "]", "expected an integer id");
        ids.push_back(j[i].get<int32_t>());
      }
      std::cout << tok.decode(ids, no_special);
      return 0;
    }
    std::vector<int32_t> ids;
    if (chat) {
      // Messages keep every field (tool_calls, reasoning_content...) for the model's own template.
      const auto j = fathom::tok::ordered_json::parse(text, nullptr, false);
      if (j.is_discarded() || !j.is_array())
        throw fathom::UsageError(source, "", "expected a JSON list of {\"role\", \"content\", ...}");
      const auto fmt = parse_format(format);
      fathom::tok::ChatOptions opt;
      opt.add_generation_prompt = !no_gen_prompt;
      if (!kwargs.empty()) {
        opt.kwargs = fathom::tok::ordered_json::parse(kwargs, nullptr, false);
        if (opt.kwargs.is_discarded() || !opt.kwargs.is_object())
          throw fathom::UsageError("", "--kwargs", "expected a JSON object, e.g. {\"enable_thinking\": false}");
      }
      if (!tools.empty()) {
        opt.tools = fathom::tok::ordered_json::parse(read_input(tools), nullptr, false);
        if (opt.tools.is_discarded() || !opt.tools.is_array())
          throw fathom::UsageError(tools, "", "expected a JSON list of tool schemas");
      }
      std::string prompt;
      if (fmt == fathom::tok::ChatFormat::Auto) {
        std::cerr << "chat template: " << tok.chat_template_source() << "\n";
        prompt = tok.apply_chat_template(j, opt);
      } else {
        std::cerr << "chat template: built-in " << format << " format (--format)\n";
        std::vector<fathom::tok::ChatMessage> msgs;
        for (size_t i = 0; i < j.size(); ++i) {
          const auto& m = j[i];
          if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
              !m["content"].is_string())
            throw fathom::UsageError(source, "[" + std::to_string(i) + "]", "expected {\"role\": string, \"content\": string}");
          msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
        }
        prompt = tok.apply_chat_template(msgs, opt.add_generation_prompt, fmt);
      }
      if (show_text) { std::cout << prompt; return 0; }
      ids = tok.encode(prompt, false);  // the template already holds bos where the family wants it
    } else {
      ids = tok.encode(text, !no_special);
    }
    std::cout << nlohmann::json(ids).dump() << "\n";
  } catch (const fathom::Error& e) {
    std::cerr << "tokenize: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
