#pragma once
// Memory for weights the library makes itself (quantised, converted) and for the KV cache
// (model/kv_cache.hpp): zero-filled, 64-byte aligned, and from 2 MiB on 2 MiB aligned and marked
// for transparent huge pages (Linux), so that streaming it in decode takes a TLB miss per 2 MiB
// instead of per 4 KiB (measured: +4-6 % of gemv bandwidth, 1.3-1.4x for attention over a KV
// cache, docs/benchmarks.md). Where huge pages are unavailable the hint does nothing.
//
// Smaller buffers made while a WeightArena is open on the thread (model loading opens one) are
// carved one after another from shared 32 MiB chunks on huge pages: a small model's matrices
// (SmolLM2-135M's are 80 KiB - 1.1 MiB) would otherwise each sit on 4 KiB pages, and a decode
// step, which passes every matrix once per token, missed the TLB every 4 KiB with the hardware
// prefetchers stopping at each page (docs/benchmarks.md, "Zen 4: a model's small matrices on huge
// pages").
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fathom::kernels {

namespace detail {
constexpr size_t kHugePage = size_t(2) << 20;

// `bytes` (rounded up to `align`) of `align`-aligned memory, marked for huge pages when `align` is
// kHugePage; not yet touched.
inline std::shared_ptr<std::byte> raw_weight_memory(size_t bytes, size_t align) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
  auto* p = static_cast<std::byte*>(std::aligned_alloc(align, rounded));
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);  // before the pages are touched
#endif
  return std::shared_ptr<std::byte>(p, [](std::byte* q) { std::free(q); });
}

// The chunk small buffers are carved from (WeightArena); its memory lives while any buffer does.
struct ArenaChunk {
  static constexpr size_t kBytes = size_t(32) << 20;
  std::shared_ptr<std::byte> base;  // [kBytes]
  size_t used = 0;

  std::shared_ptr<std::byte> take(size_t bytes) {
    const size_t rounded = (bytes + 63) / 64 * 64;
    if (!base || used + rounded > kBytes) {
      base = raw_weight_memory(kBytes, kHugePage);  // pages are touched (and made) as buffers take them
      used = 0;
    }
    std::shared_ptr<std::byte> p(base, base.get() + used);  // shares the chunk's ownership
    used += rounded;
    return p;
  }
};
inline ArenaChunk*& open_arena() {
  thread_local ArenaChunk* chunk = nullptr;
  return chunk;
}
}  // namespace detail

// While one lives, the WeightBuffers below 2 MiB this thread makes come from shared huge-page
// chunks, in the order they are made (a layer's matrices side by side). Nested arenas use the
// outermost. Open one around making weights that live together; short-lived buffers made inside
// keep their space until the chunk's last buffer is gone.
class WeightArena {
 public:
  WeightArena() : owner_(detail::open_arena() == nullptr) {
    if (owner_) detail::open_arena() = &chunk_;
  }
  ~WeightArena() {
    if (owner_) detail::open_arena() = nullptr;
  }
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;

 private:
  detail::ArenaChunk chunk_;
  bool owner_;
};

class WeightBuffer {
 public:
  static constexpr size_t kHugePage = detail::kHugePage;

  WeightBuffer() = default;
  explicit WeightBuffer(size_t bytes) : bytes_(bytes) {
    detail::ArenaChunk* arena = detail::open_arena();
    if (bytes >= kHugePage) buf_ = detail::raw_weight_memory(bytes, kHugePage);
    else if (arena) buf_ = arena->take(bytes);
    else buf_ = detail::raw_weight_memory(bytes, 64);
    std::memset(buf_.get(), 0, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
  }
  WeightBuffer(WeightBuffer&&) noexcept = default;
  WeightBuffer& operator=(WeightBuffer&&) noexcept = default;
  WeightBuffer(const WeightBuffer&) = delete;  // one owner, as before the arena
  WeightBuffer& operator=(const WeightBuffer&) = delete;

  std::byte* data() { return buf_.get(); }
  const std::byte* data() const { return buf_.get(); }
  size_t size() const { return bytes_; }
  template <class T> T* as() { return reinterpret_cast<T*>(buf_.get()); }
  template <class T> const T* as() const { return reinterpret_cast<const T*>(buf_.get()); }

 private:
  size_t bytes_ = 0;
  std::shared_ptr<std::byte> buf_;
};

}  // namespace fathom::kernels
