// libFuzzer target: arbitrary bytes as a safetensors file holding Q8 matrices (an I8 tensor
// `<name>` with its F16 `<name>_scale`, model/q8_checkpoint.hpp). Every such pair is validated
// the way the model loader does; only fathom::Error may come out, and an accepted matrix has the
// tensor's shape.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fathom/io/safetensors.hpp"
#include "fathom/model/q8_checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    fathom::io::TensorStore store;
    fathom::io::detail::add_safetensors_bytes(store, bytes, "fuzz/model.safetensors");
    for (const auto& name : store.names()) {
      const auto* scale = store.find(name + fathom::kQ8ScaleSuffix);
      if (!scale) continue;
      try {
        const auto& v = store.get(name);
        const auto q = fathom::q8_from_tensors(v, *scale);
        if (q.rows() != size_t(v.shape[0]) || q.cols() != size_t(v.shape[1])) __builtin_trap();
      } catch (const fathom::FormatError&) {
      }
    }
  } catch (const fathom::Error&) {
  }
  return 0;
}
