#pragma once
// GPT-2's reversible byte <-> printable-character mapping used by byte-level BPE vocabularies
// ("Ġ" is the space byte 0x20, "Ċ" is 0x0A, ...).
#include <array>
#include <cstdint>
#include <string>

#include "fathom/tokenizer/detail/utf8.hpp"

namespace fathom::tok::detail {

struct ByteLevelTables {
  std::array<char32_t, 256> byte_to_cp{};
  std::array<std::string, 256> byte_to_utf8{};
  std::array<int16_t, 512> cp_to_byte{};  // every mapped code point is < 512; -1: not a byte char
  ByteLevelTables() {
    cp_to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_cp[b] = printable ? char32_t(b) : char32_t(256 + n++);
      append_utf8(byte_to_utf8[b], byte_to_cp[b]);
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

inline const ByteLevelTables& byte_level_tables() {
  static const ByteLevelTables t;
  return t;
}

// The raw bytes a byte-level token string stands for; false if some character is not one of
// the 256 byte characters (then the reference passes the token's own UTF-8 through).
inline bool byte_level_decode(std::string_view tok, std::string& out) {
  const auto& t = byte_level_tables();
  const size_t start = out.size();
  for (size_t i = 0; i < tok.size();) {
    const char32_t c = next_cp(tok, i);
    if (c >= 512 || t.cp_to_byte[c] < 0) { out.resize(start); return false; }
    out += static_cast<char>(t.cp_to_byte[c]);
  }
  return true;
}

}  // namespace fathom::tok::detail
