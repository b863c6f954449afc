#pragma once
// How weight matrices are held in memory, chosen by the user at load time (`--weights`). It lives
// in core/ because two layers act on it: io/ converts GGUF's quantised tensors straight into the
// requested form (dequantising a 4-bit tensor to f32 and then to Q8 would lose what Q8 keeps),
// and model/ converts everything a checkpoint holds as plain floats.
//
//   AsStored  keep the checkpoint's own form: zero-copy views of F32/BF16/F16 tensors; Q8
//             checkpoints and GGUF Q8_0 as Q8; other GGUF quantised types as Q8 (see
//             io/gguf_weights.hpp)
//   F32, BF16 convert every matrix (a quantised one is dequantised exactly first)
//   Q8        quantise every matrix (not norms, biases or an F32/BF16/F16 embedding's rows) to the
//             8-bit block format of kernels/quant.hpp
#include <cstdint>

namespace fathom {

enum class WeightFormat : uint8_t { AsStored, F32, BF16, Q8 };

}  // namespace fathom
