// libFuzzer target: arbitrary bytes as a trace JSON Lines file (report/trace_io.hpp). The reader
// may only throw fathom::Error; an accepted file has one layer record per layer on every line and
// turns back into a Trace (what the report tools do with it) without crashing.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "fathom/report/trace_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  try {
    const auto f = fathom::report::read_trace_jsonl(in, "fuzz/trace.jsonl");
    if (f.texts.size() != f.records.size()) __builtin_trap();
    for (const auto& r : f.records)
      if (r.layers.size() != f.n_layers) __builtin_trap();
    const auto t = f.to_trace();
    if (t.records().size() != f.records.size()) __builtin_trap();
    const auto text = f.token_text();
    for (const auto& r : f.records) (void)text(r.token);
  } catch (const fathom::Error&) {
  }
  return 0;
}
