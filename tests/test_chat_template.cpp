// The model's own chat templates rendered byte for byte as transformers' apply_chat_template
// (tokenize=False) renders them: every case of tests/fixtures/chat_templates/expected.json
// (tools/gen_chat_template_fixtures.py), through ChatTemplate for the fixture templates and
// through Tokenizer::apply_chat_template for the real tokenizers' own templates.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "fathom/core/shared_path.hpp"
#include "fathom/tokenizer/chat_template.hpp"
#include "fathom/tokenizer/gguf_tokenizer.hpp"
#include "fathom/tokenizer/tokenizer.hpp"

using fathom::tok::ChatOptions;
using fathom::tok::ChatTemplate;
using fathom::tok::ordered_json;
namespace jinja = fathom::tok::jinja;

namespace {

const std::filesystem::path kDir = std::filesystem::path(FATHOM_SOURCE_DIR) / "tests" / "fixtures" / "chat_templates";

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot open " << p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const ordered_json& fixtures() {
  static const ordered_json fx = ordered_json::parse(slurp(kDir / "expected.json"));
  return fx;
}

ChatOptions options_of(const ordered_json& c) {
  ChatOptions o;
  o.add_generation_prompt = c["add_generation_prompt"].get<bool>();
  if (c["tools"].get<bool>()) o.tools = fixtures()["tools"];
  o.kwargs = c["kwargs"];
  return o;
}

// Runs every case of one template; `render` does the rendering. Returns the number compared.
template <class Render>
size_t check_cases(const std::string& name, const Render& render) {
  const auto& t = fixtures()["templates"][name];
  size_t compared = 0;
  for (const auto& c : t["cases"]) {
    const std::string conv = c["conversation"].get<std::string>();
    CAPTURE(name);
    CAPTURE(conv);
    CAPTURE(c["add_generation_prompt"].get<bool>());
    CAPTURE(c["kwargs"].dump());
    CAPTURE(c["tools"].get<bool>());
    const auto& msgs = fixtures()["conversations"][conv];
    const ChatOptions o = options_of(c);
    if (c.contains("error")) {
      const std::string type = c["error_type"].get<std::string>(), msg = c["error"].get<std::string>();
      if (type == "TemplateError") {  // raise_exception(msg)
        try {
          (void)render(msgs, o);
          FAIL("expected raise_exception: " << msg);
        } catch (const jinja::RaisedError& e) {
          CHECK(e.message() == msg);
          CHECK(e.field().starts_with("line "));
        }
      } else {  // Jinja's own runtime errors (UndefinedError...)
        try {
          (void)render(msgs, o);
          FAIL("expected " << type << ": " << msg);
        } catch (const jinja::RenderError& e) {
          CHECK(std::string(e.what()).find(msg) != std::string::npos);
        }
      }
    } else {
      CHECK(render(msgs, o) == c["text"].get<std::string>());
    }
    ++compared;
  }
  return compared;
}

fathom::tok::SpecialTokens special_of(const ordered_json& t) {
  fathom::tok::SpecialTokens sp;
  for (auto it = t["special_tokens"].begin(); it != t["special_tokens"].end(); ++it)
    sp.emplace_back(it.key(), it.value().get<std::string>());
  return sp;
}

void check_fixture_template(const std::string& name) {
  const auto& t = fixtures()["templates"][name];
  const std::string file = t["file"].get<std::string>();
  const ChatTemplate tpl = ChatTemplate::parse(slurp(kDir / file), file);
  const auto sp = special_of(t);
  const size_t n = check_cases(name, [&](const ordered_json& m, const ChatOptions& o) { return tpl.render(m, o, sp); });
  MESSAGE(name << ": " << n << " cases compared");
  CHECK(n >= 40);
}

}  // namespace

TEST_CASE("SmolLM2 (GGUF metadata) template") { check_fixture_template("smollm2"); }
TEST_CASE("Qwen2.5-Instruct template (tools, tool calls)") { check_fixture_template("qwen2.5"); }
TEST_CASE("Llama-3.1-Instruct template (tools, date, ipython)") { check_fixture_template("llama3.1"); }
TEST_CASE("Llama-3.2-Instruct template") { check_fixture_template("llama3.2"); }
TEST_CASE("Mistral-7B-Instruct-v0.3 template (tool calls, raise_exception)") { check_fixture_template("mistral-v0.3"); }
TEST_CASE("Mistral-7B-Instruct-v0.1 template") { check_fixture_template("mistral-v0.1"); }
TEST_CASE("Llama-2-chat template") { check_fixture_template("llama2-chat"); }
TEST_CASE("gemma-2-2b-it template") { check_fixture_template("gemma2"); }
TEST_CASE("Phi-3.5-mini-instruct template") { check_fixture_template("phi3.5"); }

TEST_CASE("real tokenizers render their own templates (qwen3 with enable_thinking, llama3)") {
  for (const std::string name : {"qwen3", "llama3"}) {
    const auto tok = fathom::tok::Tokenizer::from_dir(fathom::shared_file("tokenizers/" + name));
    REQUIRE(tok.has_own_chat_template());
    CHECK(tok.chat_template_source().ends_with("tokenizer_config.json: chat_template"));
    // The special tokens the template sees are those transformers gives it.
    const auto& t = fixtures()["templates"][name];
    CHECK(tok.special_tokens() == special_of(t));
    const size_t n = check_cases(name, [&](const ordered_json& m, const ChatOptions& o) { return tok.apply_chat_template(m, o); });
    MESSAGE(name << ": " << n << " cases compared");
    CHECK(n >= 40);
  }
}

TEST_CASE("the simple ChatMessage call uses the model's own template") {
  const auto tok = fathom::tok::Tokenizer::from_dir(fathom::shared_file("tokenizers/qwen3"));
  const auto& t = fixtures()["templates"]["qwen3"];
  for (const auto& c : t["cases"]) {
    if (c["conversation"] != "multi_turn" || !c["kwargs"].empty() || c["tools"].get<bool>()) continue;
    std::vector<fathom::tok::ChatMessage> msgs;
    for (const auto& m : fixtures()["conversations"]["multi_turn"])
      msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    CHECK(tok.apply_chat_template(msgs, c["add_generation_prompt"].get<bool>()) == c["text"].get<std::string>());
  }
  // Extra fields travel with a ChatMessage (a tool call the template renders).
  fathom::tok::ChatMessage call{"assistant", ""};
  call.fields["tool_calls"] = fixtures()["conversations"]["tool_call"][1]["tool_calls"];
  const std::string s = tok.apply_chat_template({{"user", "Weather?"}, call}, false);
  CHECK(s.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\", \"unit\": \"celsius\"}}\n</tool_call>") != std::string::npos);
}

TEST_CASE("chat_template.jinja beside tokenizer.json takes precedence over the config") {
  const auto dir = std::filesystem::temp_directory_path() / "fathom_chat_template_test";
  std::filesystem::create_directories(dir);
  const auto src = fathom::shared_file("tokenizers/qwen3");
  std::filesystem::copy_file(src / "tokenizer.json", dir / "tokenizer.json", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(src / "tokenizer_config.json", dir / "tokenizer_config.json", std::filesystem::copy_options::overwrite_existing);
  { std::ofstream(dir / "chat_template.jinja") << "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}\n"; }
  const auto tok = fathom::tok::Tokenizer::from_dir(dir);
  CHECK(tok.chat_template_source() == (dir / "chat_template.jinja").string());
  CHECK(tok.apply_chat_template({{"user", "hi"}}, true) == "[user]hi");
  std::filesystem::remove_all(dir);
}

TEST_CASE("named templates in tokenizer_config.json: default, tool_use, by name") {
  const auto src = fathom::shared_file("tokenizers/qwen3");
  const std::string tj = slurp(src / "tokenizer.json");
  const std::string cfg = R"({"eos_token": "<|im_end|>", "chat_template": [
      {"name": "default", "template": "D{{ messages[0].content }}"},
      {"name": "tool_use", "template": "T{{ tools | length }}"},
      {"name": "rag", "template": "R{{ documents[0].title }}"}]})";
  const auto tok = fathom::tok::Tokenizer::from_json_text(tj, cfg, "tokenizer.json", "cfg.json");
  const ordered_json msgs = ordered_json::parse(R"([{"role": "user", "content": "x"}])");
  ChatOptions o;
  CHECK(tok.apply_chat_template(msgs, o) == "Dx");
  o.tools = ordered_json::parse(R"([{"type": "function"}])");
  CHECK(tok.apply_chat_template(msgs, o) == "T1");
  o.documents = ordered_json::parse(R"([{"title": "doc", "text": "t"}])");
  CHECK(tok.apply_chat_template(msgs, o, "rag") == "Rdoc");
  CHECK_THROWS_AS(tok.apply_chat_template(msgs, o, "nope"), fathom::UsageError);
  CHECK(tok.chat_template_source() == "cfg.json: chat_template[default]");
}

TEST_CASE("bad conversations are typed errors") {
  const auto tok = fathom::tok::Tokenizer::from_dir(fathom::shared_file("tokenizers/qwen3"));
  CHECK_THROWS_AS(tok.apply_chat_template(ordered_json::array(), ChatOptions{}), fathom::UsageError);
  CHECK_THROWS_AS(tok.apply_chat_template(ordered_json::parse(R"(["not a dict"])"), ChatOptions{}), fathom::UsageError);
  CHECK_THROWS_AS(tok.apply_chat_template(ordered_json::parse(R"({"role": "user"})"), ChatOptions{}), fathom::UsageError);
  // Without a template of its own (Mistral-7B-v0.1), the built-in format is used and says so.
  const auto m = fathom::tok::Tokenizer::from_dir(fathom::shared_file("tokenizers/mistral"));
  CHECK_FALSE(m.has_own_chat_template());
  CHECK(m.chat_template_source() == "built-in mistral format");
  CHECK(m.apply_chat_template({{"user", "hi"}}, true) == "<s>[INST] hi [/INST]");
}

TEST_CASE("SmolLM2 GGUF: the chat prompt ids equal transformers' (template from the GGUF metadata)") {
  // What `generate --chat` feeds the model: the GGUF's own template, encoded without specials.
  const auto tok = fathom::tok::tokenizer_from_gguf(
      fathom::shared_file("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"));
  REQUIRE(tok.has_own_chat_template());
  size_t n = 0;
  for (auto it = fixtures()["smollm2_gguf_ids"].begin(); it != fixtures()["smollm2_gguf_ids"].end(); ++it) {
    CAPTURE(it.key());
    std::vector<fathom::tok::ChatMessage> msgs;
    for (const auto& m : fixtures()["conversations"][it.key()])
      msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    const std::string text = tok.apply_chat_template(msgs, true);
    CHECK(tok.encode(text, false) == it.value().get<std::vector<int32_t>>());
    ++n;
  }
  CHECK(n == 4);
  // Its default system prompt, which the built-in ChatML format leaves out.
  CHECK(tok.apply_chat_template({{"user", "Hi"}}, true).starts_with(
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"));
}
