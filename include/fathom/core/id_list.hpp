#pragma once
// Token ids written as text ("1,403,407", the --ids option of the examples). Lives in core because
// it is plain text parsing that every frontend shares, and a fuzz target can test it alone.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/error.hpp"

namespace fathom {

// Comma-separated integers -> ids. Each item is a decimal integer (leading spaces and a sign
// allowed, as strtol reads them) that fits int32; anything else is a UsageError naming `field`
// and the item. An empty text gives no ids; a trailing comma is ignored.
inline std::vector<int32_t> parse_id_list(std::string_view text, const std::string& field = "--ids") {
  std::vector<int32_t> ids;
  size_t a = 0;
  while (a < text.size()) {
    size_t b = text.find(',', a);
    if (b == std::string_view::npos) b = text.size();
    const std::string item(text.substr(a, b - a));
    a = b + 1;
    // strtol needs a NUL-terminated string: an embedded NUL would end the number early.
    const bool has_nul = item.find('\0') != std::string::npos;
    errno = 0;
    char* end = nullptr;
    const long v = item.empty() || has_nul ? 0 : std::strtol(item.c_str(), &end, 10);
    if (item.empty() || has_nul || end == item.c_str() || *end != '\0')
      throw UsageError("", field, "not an integer: '" + item + "'");
    // An id beyond int32 used to be cut to its low 32 bits silently (found by fuzzing).
    if (errno == ERANGE || v < INT32_MIN || v > INT32_MAX)
      throw UsageError("", field, "'" + item + "' is outside the range of a token id (int32)");
    ids.push_back(int32_t(v));
  }
  return ids;
}

}  // namespace fathom
