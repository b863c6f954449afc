// libFuzzer target for the Jinja chat-template renderer: any template text must parse and
// render a fixed conversation (tools, a tool call, unicode) without crashing, hanging or
// exhausting memory. Bad templates may only raise fathom errors; the limits below bound
// recursion, loop iterations and output, so every input finishes quickly.
//
//   CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DFATHOM_BUILD_FUZZ=ON && cmake --build build-fuzz --target fuzz_jinja
//   build-fuzz/fuzz/fuzz_jinja -max_total_time=60 corpus/ tests/fixtures/chat_templates/
#include <cstddef>
#include <cstdint>
#include <string>

#include "fathom/core/error.hpp"
#include "fathom/tokenizer/chat_template.hpp"

namespace {

const fathom::tok::ordered_json& conversation() {
  static const auto j = fathom::tok::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Grüße 😀 {{ x }}"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call12345", "type": "function",
      "function": {"name": "f", "arguments": {"a": 1.5, "b": [true, null]}}}]},
    {"role": "tool", "content": "{\"r\": 1}", "tool_call_id": "call12345"},
    {"role": "assistant", "content": "Done.", "reasoning_content": "think"}])");
  return j;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fathom::tok::jinja::Limits lim;
  lim.max_parse_depth = 64;
  lim.max_call_depth = 16;
  lim.max_eval_depth = 256;
  lim.max_loop_steps = 20000;
  lim.max_range = 1000;
  lim.max_output = size_t(1) << 18;
  try {
    const auto t = fathom::tok::ChatTemplate::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz", lim);
    fathom::tok::ChatOptions o;
    o.tools = fathom::tok::ordered_json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])");
    o.kwargs["enable_thinking"] = false;
    (void)t.render(conversation(), o, {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  } catch (const fathom::Error&) {
    // typed rejection of a bad template: fine
  }
  return 0;
}
