// libFuzzer target: arbitrary bytes as a llama2.c tokenizer (tok512.bin layout). The first two
// bytes give the model's vocabulary size (3..1026; the file does not store it), the rest is the
// file. A tokenizer that loads must encode and decode without crashing: a fixed text, and the
// concatenation of its own first pieces (so the merge loop meets the hostile vocabulary's
// pieces and scores: NaN, duplicates, NUL bytes, empty pieces).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "fathom/tokenizer/llama2c_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t vocab = 3 + (size_t(data[0]) | size_t(data[1]) << 8) % 1024;
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data + 2), size - 2);
  try {
    const auto t = fathom::tok::Llama2cTokenizer::from_bytes(bytes, vocab, "fuzz/tok.bin");
    if (t.vocab_size() != vocab) __builtin_trap();
    std::string own;
    for (int32_t id = 0; id < int32_t(vocab) && id < 24; ++id) own += t.token_text(id);
    for (const std::string& text : {std::string("Once upon a time, h\xc3\xa9llo \xff\xfe!"), own}) {
      try {
        const auto ids = t.encode(text);
        for (int32_t id : ids)
          if (id < 0 || size_t(id) >= vocab) __builtin_trap();  // encode only yields vocabulary ids
        (void)t.decode(ids);
      } catch (const fathom::TokenizerError&) {
        // a byte with no <0xXX> token in a small vocabulary
      }
    }
  } catch (const fathom::Error&) {
  }
  return 0;
}
