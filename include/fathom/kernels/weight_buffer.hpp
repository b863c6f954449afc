#pragma once
// Memory for weights the library makes itself (quantised, converted) and for the KV cache
// (model/kv_cache.hpp): zero-filled, 64-byte aligned, and from 2 MiB on 2 MiB aligned and marked
// for transparent huge pages (Linux), so that streaming it in decode takes a TLB miss per 2 MiB
// instead of per 4 KiB (measured: +4-6 % of gemv bandwidth, 1.3-1.4x for attention over a KV
// cache, docs/benchmarks.md). Where huge pages are unavailable the hint does nothing.
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

class WeightBuffer {
 public:
  static constexpr size_t kHugePage = size_t(2) << 20;

  WeightBuffer() = default;
  explicit WeightBuffer(size_t bytes) : bytes_(bytes) {
    const size_t align = bytes >= kHugePage ? kHugePage : 64;
    const size_t rounded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
    auto* p = static_cast<std::byte*>(std::aligned_alloc(align, rounded));
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);  // before the pages are touched
#endif
    std::memset(p, 0, rounded);
    buf_.reset(p);
  }

  std::byte* data() { return buf_.get(); }
  const std::byte* data() const { return buf_.get(); }
  size_t size() const { return bytes_; }
  template <class T> T* as() { return reinterpret_cast<T*>(buf_.get()); }
  template <class T> const T* as() const { return reinterpret_cast<const T*>(buf_.get()); }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  size_t bytes_ = 0;
  std::unique_ptr<std::byte, Free> buf_;
};

}  // namespace fathom::kernels
