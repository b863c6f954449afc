// libFuzzer target: arbitrary bytes as a GGUF file. The reader may only answer with a
// fathom::Error; every tensor it accepts must lie inside the input and dequantise without
// touching anything else (ASan checks the reads), and its metadata getters must not crash.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fathom/io/gguf.hpp"
#include "fathom/io/gguf_quants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    auto f = fathom::io::GgufFile::parse(bytes, "fuzz.gguf");
    for (const auto& key : f.keys()) {  // each getter either answers or throws a typed error
      try { (void)f.get_string(key); } catch (const fathom::Error&) {}
      try { (void)f.get_uint(key); } catch (const fathom::Error&) {}
      try { (void)f.get_int(key); } catch (const fathom::Error&) {}
      try { (void)f.get_float(key); } catch (const fathom::Error&) {}
      try { (void)f.get_int_array(key); } catch (const fathom::Error&) {}
      try { (void)f.get_float_array(key); } catch (const fathom::Error&) {}
      try { (void)f.get_string_array(key); } catch (const fathom::Error&) {}
    }
    for (const auto& t : f.tensors()) {
      const auto* begin = reinterpret_cast<const uint8_t*>(t.data);
      if (begin < data || begin + t.nbytes > data + size || t.numel() == 0) __builtin_trap();
      if (!fathom::io::ggml_type_supported(t.type)) continue;
      if (t.numel() > (size_t(1) << 20)) continue;  // the bytes are in the input: this bounds memory only
      std::vector<float> out = fathom::io::dequantize_tensor(f, t);
      if (out.size() != t.numel()) __builtin_trap();
    }
  } catch (const fathom::Error&) {
    // typed rejection: the expected outcome for malformed input
  }
  return 0;
}
