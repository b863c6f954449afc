#pragma once
// Named tensors from any source (memory-mapped safetensors, a llama2.c checkpoint converted in
// memory, tensors built by a test). Models read their weights only through this interface.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"

namespace fathom::io {

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;       // row-major, outermost first (as torch / safetensors)
  const std::byte* data = nullptr;  // nbytes bytes, valid while the owning TensorStore lives
  size_t nbytes = 0;
  std::string file;                 // where it came from, for error messages
  // The data lie in a memory-mapped checkpoint file (io::MappedFile; its 4 KiB pages), not in a
  // buffer made at load: Model copies such matrices onto huge pages (LoadOptions::map_weights).
  bool mapped = false;

  size_t numel() const {
    size_t n = 1;
    for (auto d : shape) n *= size_t(d);
    return n;
  }
  template <class T> std::span<const T> as() const {
    return {reinterpret_cast<const T*>(data), nbytes / sizeof(T)};
  }
};

std::string shape_string(const std::vector<int64_t>& shape);

class TensorStore {
 public:
  // Keeps `holder` (an mmap, a byte buffer) alive as long as this store lives.
  void keep_alive(std::shared_ptr<const void> holder) { holders_.push_back(std::move(holder)); }

  void add(TensorView v) { tensors_[v.name] = std::move(v); }

  // Copies `bytes` into storage owned by the store.
  const TensorView& add_owned(std::string name, DType dtype, std::vector<int64_t> shape,
                              std::vector<std::byte> bytes, std::string file = {}) {
    auto buf = std::make_shared<std::vector<std::byte>>(std::move(bytes));
    TensorView v{name, dtype, std::move(shape), buf->data(), buf->size(), std::move(file)};
    holders_.push_back(buf);
    auto& slot = tensors_[name];
    slot = std::move(v);
    return slot;
  }

  const TensorView* find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
  }
  bool contains(const std::string& name) const { return find(name) != nullptr; }

  const TensorView& get(const std::string& name) const {
    if (auto* v = find(name)) return *v;
    throw FormatError(origin_, name, "missing tensor");
  }
  // Also checks the shape: a checkpoint that does not match its config fails here, by name.
  const TensorView& get(const std::string& name, const std::vector<int64_t>& shape) const {
    const auto& v = get(name);
    if (v.shape != shape)
      throw FormatError(v.file.empty() ? origin_ : v.file, name,
                        "shape " + shape_string(v.shape) + ", expected " + shape_string(shape));
    return v;
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& [k, _] : tensors_) out.push_back(k);
    return out;
  }
  size_t size() const { return tensors_.size(); }

  // The file or folder this store was read from (for messages).
  const std::string& origin() const { return origin_; }
  void set_origin(std::string o) { origin_ = std::move(o); }

 private:
  std::map<std::string, TensorView> tensors_;
  std::vector<std::shared_ptr<const void>> holders_;
  std::string origin_;
};

inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace fathom::io
