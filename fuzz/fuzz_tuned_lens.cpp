// libFuzzer target: arbitrary bytes as a tuned-lens checkpoint, i.e. config.json and
// params.safetensors. The first two bytes give the length n of config.json (mod the rest); the
// next n bytes are config.json and the remainder params.safetensors. The loader may only throw
// fathom::Error; an accepted lens holds exactly L·H² weights and L·H biases, and it must never
// allocate more than the input could describe (ASan's allocation limit catches a config claiming
// a huge d_model).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "fathom/lens/tuned_lens.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t rest = size - 2;
  const size_t n = rest ? (size_t(data[0]) | size_t(data[1]) << 8) % (rest + 1) : 0;
  const std::string_view config(reinterpret_cast<const char*>(data + 2), n);
  const std::span<const std::byte> params(reinterpret_cast<const std::byte*>(data + 2 + n), rest - n);
  try {
    const auto lens = fathom::lens::TunedLens::from_bytes(config, params, "fuzz/config.json",
                                                          "fuzz/params.safetensors");
    const size_t L = lens.n_layers(), H = lens.hidden();
    if (L == 0 || H == 0 || lens.weights().size() != L * H * H || lens.biases().size() != L * H)
      __builtin_trap();
  } catch (const fathom::Error&) {
  }
  return 0;
}
