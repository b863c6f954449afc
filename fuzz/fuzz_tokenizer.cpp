// libFuzzer target for the tokenizer: arbitrary bytes must never crash encode, decode, the
// streaming decoder or the tokenizer.json loader. Malformed input may only raise fathom errors.
//
//   CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DFATHOM_BUILD_FUZZ=ON && cmake --build build-fuzz --target fuzz_tokenizer
//   FATHOM_SHARED=../shared build-fuzz/fuzz/fuzz_tokenizer -max_total_time=60
//
// First input byte picks the operation: 0-2 encode with qwen3 / llama3 / mistral (the real files
// from $FATHOM_SHARED), 3-5 decode + stream-decode the rest read as int32 ids, 6 load the rest as
// a tokenizer.json. Without the shared folder every operation uses a tiny built-in tokenizer.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/shared_path.hpp"
#include "fathom/tokenizer/tokenizer.hpp"

namespace {

constexpr const char* kTiny = R"({"added_tokens": [{"id": 5, "content": "<s>", "special": true, "normalized": false}],
  "normalizer": {"type": "NFC"},
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true, "use_regex": true},
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "c": 4}, "merges": ["a b"]}})";

std::vector<std::unique_ptr<fathom::tok::Tokenizer>>& tokenizers() {
  static std::vector<std::unique_ptr<fathom::tok::Tokenizer>> v;
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  for (const char* name : {"qwen3", "llama3", "mistral"}) {
    try {
      tokenizers().push_back(std::make_unique<fathom::tok::Tokenizer>(
          fathom::tok::Tokenizer::from_dir(fathom::shared_dir() / "tokenizers" / name)));
    } catch (const fathom::Error&) {
      tokenizers().push_back(std::make_unique<fathom::tok::Tokenizer>(fathom::tok::Tokenizer::from_json_text(kTiny)));
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int op = data[0] % 7;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    if (op < 3) {
      const auto& tok = *tokenizers()[size_t(op)];
      const auto ids = tok.encode(rest, (data[0] & 0x80) != 0);
      const std::string back = tok.decode(ids);
      if (!fathom::tok::detail::is_valid_utf8(back)) __builtin_trap();  // decode always yields UTF-8
    } else if (op < 6) {
      const auto& tok = *tokenizers()[size_t(op - 3)];
      std::vector<int32_t> ids(rest.size() / 4);
      if (!ids.empty()) std::memcpy(ids.data(), rest.data(), ids.size() * 4);
      // Mostly in range (exercises byte fallback / partial UTF-8), sometimes not (must throw).
      for (auto& id : ids)
        if ((data[0] & 0x80) == 0) id = int32_t(uint32_t(id) % uint32_t(tok.vocab_size()));
      (void)tok.decode(ids, (data[0] & 0x40) != 0);
      fathom::tok::StreamDecoder sd(tok);
      for (int32_t id : ids) {
        const std::string piece = sd.push(id);
        if (!fathom::tok::detail::is_valid_utf8(piece)) __builtin_trap();
      }
      (void)sd.flush();
    } else {
      const auto tok = fathom::tok::Tokenizer::from_json_text(std::string(rest));
      (void)tok.decode(tok.encode("fuzz text <s> ab c"));
    }
  } catch (const fathom::Error&) {
    // typed errors are the expected outcome for bad input
  }
  return 0;
}
