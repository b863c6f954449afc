#pragma once
// GGUF (llama.cpp's model file), versions 2 and 3, little-endian:
//   "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x  { string key | u32 value_type | value }
//   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to `general.alignment` (default 32) | tensor data (offsets relative to here)
// where string = u64 length + bytes (no terminator) and an array value = u32 element type +
// u64 count + elements (arrays may hold arrays). The whole file is mapped and validated up front,
// so a malformed file is a typed error naming the file, the key or tensor and the reason, and every
// GgufTensor handed out lies inside the file.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/io/gguf_types.hpp"
#include "fathom/io/mmap.hpp"

namespace fathom::io {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

// Deepest array-of-arrays nesting accepted (real files nest at most once; the limit bounds the
// recursion of a hostile file).
inline constexpr int kGgufMaxNesting = 8;
inline constexpr size_t kGgufDefaultAlignment = 32;

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

constexpr std::string_view gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: return "uint8";
    case GgufValueType::INT8: return "int8";
    case GgufValueType::UINT16: return "uint16";
    case GgufValueType::INT16: return "int16";
    case GgufValueType::UINT32: return "uint32";
    case GgufValueType::INT32: return "int32";
    case GgufValueType::FLOAT32: return "float32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "string";
    case GgufValueType::ARRAY: return "array";
    case GgufValueType::UINT64: return "uint64";
    case GgufValueType::INT64: return "int64";
    case GgufValueType::FLOAT64: return "float64";
  }
  return "?";
}

constexpr bool gguf_is_unsigned(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64;
}
constexpr bool gguf_is_signed(GgufValueType t) {
  return t == GgufValueType::INT8 || t == GgufValueType::INT16 || t == GgufValueType::INT32 ||
         t == GgufValueType::INT64;
}
constexpr bool gguf_is_integer(GgufValueType t) { return gguf_is_unsigned(t) || gguf_is_signed(t); }
constexpr bool gguf_is_float(GgufValueType t) {
  return t == GgufValueType::FLOAT32 || t == GgufValueType::FLOAT64;
}

// One metadata value. Unsigned integers are held as uint64_t, signed ones as int64_t, floats as
// double (exact for float32), so the value is the file's; `type` keeps the file's type.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  GgufValueType elem_type = GgufValueType::UINT8;  // arrays only: the element type
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>> value;

  bool is_array() const { return type == GgufValueType::ARRAY; }
  // "uint32", "string", "array of float32", "array of array of int32"...
  std::string type_name() const {
    if (!is_array()) return std::string(gguf_value_type_name(type));
    std::string s = "array of ";
    if (elem_type == GgufValueType::ARRAY) {
      const auto& a = array();
      return s + (a.empty() ? std::string("array") : a.front().type_name());
    }
    return s + std::string(gguf_value_type_name(elem_type));
  }
  // Accessors for the held alternative; callers check `type` first (GgufFile's getters do).
  const std::vector<GgufValue>& array() const { return std::get<std::vector<GgufValue>>(value); }
  const std::string& str() const { return std::get<std::string>(value); }
  uint64_t u() const { return std::get<uint64_t>(value); }
  int64_t i() const { return std::get<int64_t>(value); }
  double f() const { return std::get<double>(value); }
  bool b() const { return std::get<bool>(value); }
};

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;          // ggml order: ne[0] is the fastest-varying (row length)
  const std::byte* data = nullptr;  // nbytes bytes inside the file (no alignment promised beyond
                                    // the file's: mmap'd files give `alignment`-aligned data)
  size_t nbytes = 0;
  uint64_t offset = 0;              // relative to the start of the data section

  // torch order (outermost first): ne reversed.
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
  size_t numel() const {
    size_t n = 1;
    for (auto d : ne) n *= size_t(d);
    return n;
  }
};

namespace detail {

// Bounds-checked little-endian cursor over the file bytes. Every read names the field it was
// reading, so a truncated file says where it ended.
class GgufCursor {
 public:
  GgufCursor(std::span<const std::byte> bytes, const std::string& file) : b_(bytes), file_(file) {}
  size_t pos() const { return pos_; }
  size_t left() const { return b_.size() - pos_; }

  void need(uint64_t n, const std::string& field, const char* what) const {
    if (n > left())
      throw FormatError(file_, field, std::string(what) + " (" + std::to_string(n) + " bytes at offset " +
                                          std::to_string(pos_) + ") runs past the end of the file (" +
                                          std::to_string(b_.size()) + " bytes)");
  }
  template <class T> T read(const std::string& field, const char* what) {
    need(sizeof(T), field, what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& field, const char* what) {
    const auto n = read<uint64_t>(field, what);
    need(n, field, what);
    std::string s(reinterpret_cast<const char*>(b_.data()) + pos_, size_t(n));
    pos_ += size_t(n);
    return s;
  }

 private:
  std::span<const std::byte> b_;
  const std::string& file_;
  size_t pos_ = 0;
};

inline bool gguf_value_type_known(uint32_t t) { return t <= uint32_t(GgufValueType::FLOAT64); }

// Fewest bytes one value of type t occupies in a file (an array: its type and count).
inline size_t gguf_min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    case GgufValueType::STRING: return 8;
    case GgufValueType::ARRAY: return 12;
  }
  return 1;
}

inline GgufValue read_gguf_value(GgufCursor& c, GgufValueType t, const std::string& file,
                                 const std::string& key, int depth) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufValueType::UINT8: v.value = uint64_t(c.read<uint8_t>(key, "uint8 value")); break;
    case GgufValueType::INT8: v.value = int64_t(c.read<int8_t>(key, "int8 value")); break;
    case GgufValueType::UINT16: v.value = uint64_t(c.read<uint16_t>(key, "uint16 value")); break;
    case GgufValueType::INT16: v.value = int64_t(c.read<int16_t>(key, "int16 value")); break;
    case GgufValueType::UINT32: v.value = uint64_t(c.read<uint32_t>(key, "uint32 value")); break;
    case GgufValueType::INT32: v.value = int64_t(c.read<int32_t>(key, "int32 value")); break;
    case GgufValueType::UINT64: v.value = c.read<uint64_t>(key, "uint64 value"); break;
    case GgufValueType::INT64: v.value = c.read<int64_t>(key, "int64 value"); break;
    case GgufValueType::FLOAT32: v.value = double(c.read<float>(key, "float32 value")); break;
    case GgufValueType::FLOAT64: v.value = c.read<double>(key, "float64 value"); break;
    case GgufValueType::BOOL: {
      const auto b = c.read<uint8_t>(key, "bool value");
      if (b > 1) throw FormatError(file, key, "bool value " + std::to_string(b) + " is neither 0 nor 1");
      v.value = b == 1;
      break;
    }
    case GgufValueType::STRING: v.value = c.read_string(key, "string value"); break;
    case GgufValueType::ARRAY: {
      if (depth >= kGgufMaxNesting)
        throw FormatError(file, key, "arrays nested deeper than " + std::to_string(kGgufMaxNesting) + " levels");
      const auto et = c.read<uint32_t>(key, "array element type");
      if (!gguf_value_type_known(et))
        throw FormatError(file, key, "unknown array element type " + std::to_string(et));
      v.elem_type = GgufValueType(et);
      const auto n = c.read<uint64_t>(key, "array length");
      // Before allocating: even the smallest elements must fit in what is left of the file.
      if (n > c.left() / gguf_min_value_bytes(v.elem_type))
        throw FormatError(file, key, "array of " + std::to_string(n) + " " +
                                         std::string(gguf_value_type_name(v.elem_type)) +
                                         " runs past the end of the file (" + std::to_string(c.left()) +
                                         " bytes left at offset " + std::to_string(c.pos()) + ")");
      std::vector<GgufValue> items;
      items.reserve(size_t(n));
      for (uint64_t k = 0; k < n; ++k) items.push_back(read_gguf_value(c, v.elem_type, file, key, depth + 1));
      v.value = std::move(items);
      break;
    }
  }
  return v;
}

inline uint64_t gguf_align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace detail

class GgufFile {
 public:
  // Maps the file and validates all of it (header, metadata, tensor infos, data ranges).
  static GgufFile open(const std::filesystem::path& path) {
    auto map = MappedFile::open(path);
    GgufFile f = parse(map->bytes(), path.string());
    f.map_ = std::move(map);
    return f;
  }

  // Parses bytes already in memory (tests, fuzzing); `bytes` must outlive the result and its
  // tensors. `name` labels the file in errors.
  static GgufFile parse(std::span<const std::byte> bytes, std::string name) {
    GgufFile f;
    f.path_ = std::move(name);
    f.bytes_ = bytes;
    f.parse_all();
    return f;
  }

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  // File offset where tensor data begins (tensor offsets are relative to it).
  uint64_t data_offset() const { return data_offset_; }
  std::span<const std::byte> bytes() const { return bytes_; }
  // The mapping (null for parse()): hand it to TensorStore::keep_alive so views outlive this object.
  std::shared_ptr<const void> keep_alive() const { return map_; }

  // Tensors in file order.
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }

  // Metadata keys in file order.
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    out.reserve(kvs_.size());
    for (auto& [k, _] : kvs_) out.push_back(k);
    return out;
  }
  const GgufValue* find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kvs_[it->second].second;
  }
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters: FormatError(path, key, "missing" / "expected <type>, found <type>").
  std::string get_string(std::string_view key) const {
    const auto& v = require(key, "string", [](const GgufValue& x) { return x.type == GgufValueType::STRING; });
    return v.str();
  }
  uint64_t get_uint(std::string_view key) const {
    return to_uint(require(key, "an unsigned integer", is_int), key);
  }
  int64_t get_int(std::string_view key) const { return to_int(require(key, "an integer", is_int), key); }
  double get_float(std::string_view key) const {
    return require(key, "float32 or float64", [](const GgufValue& x) { return gguf_is_float(x.type); }).f();
  }
  bool get_bool(std::string_view key) const {
    return require(key, "bool", [](const GgufValue& x) { return x.type == GgufValueType::BOOL; }).b();
  }
  std::vector<std::string> get_string_array(std::string_view key) const {
    const auto& v = require(key, "array of string", [](const GgufValue& x) {
      return x.is_array() && x.elem_type == GgufValueType::STRING;
    });
    std::vector<std::string> out;
    out.reserve(v.array().size());
    for (auto& e : v.array()) out.push_back(e.str());
    return out;
  }
  std::vector<int64_t> get_int_array(std::string_view key) const {
    const auto& v = require(key, "array of integers", [](const GgufValue& x) {
      return x.is_array() && gguf_is_integer(x.elem_type);
    });
    std::vector<int64_t> out;
    out.reserve(v.array().size());
    for (auto& e : v.array()) out.push_back(to_int(e, key));
    return out;
  }
  std::vector<float> get_float_array(std::string_view key) const {
    const auto& v = require(key, "array of float32 or float64", [](const GgufValue& x) {
      return x.is_array() && gguf_is_float(x.elem_type);
    });
    std::vector<float> out;
    out.reserve(v.array().size());
    for (auto& e : v.array()) out.push_back(float(e.f()));
    return out;
  }

 private:
  GgufFile() = default;

  static bool is_int(const GgufValue& x) { return gguf_is_integer(x.type); }

  template <class Pred>
  const GgufValue& require(std::string_view key, const char* expected, Pred ok) const {
    const GgufValue* v = find(key);
    if (!v) throw FormatError(path_, std::string(key), "missing");
    if (!ok(*v)) throw FormatError(path_, std::string(key), std::string("expected ") + expected + ", found " + v->type_name());
    return *v;
  }
  uint64_t to_uint(const GgufValue& v, std::string_view key) const {
    if (gguf_is_unsigned(v.type)) return v.u();
    if (v.i() < 0)
      throw FormatError(path_, std::string(key), "expected a non-negative integer, found " + std::to_string(v.i()));
    return uint64_t(v.i());
  }
  int64_t to_int(const GgufValue& v, std::string_view key) const {
    if (gguf_is_signed(v.type)) return v.i();
    if (v.u() > uint64_t(std::numeric_limits<int64_t>::max()))
      throw FormatError(path_, std::string(key), "value " + std::to_string(v.u()) + " does not fit in int64");
    return int64_t(v.u());
  }

  void parse_all() {
    const std::string& file = path_;
    detail::GgufCursor c(bytes_, file);
    // Header.
    if (bytes_.size() < 4 || std::memcmp(bytes_.data(), "GGUF", 4) != 0)
      throw FormatError(file, "magic", "not a GGUF file (does not start with \"GGUF\")");
    c.read<uint32_t>("magic", "magic");
    version_ = c.read<uint32_t>("version", "version");
    // A big-endian file (v3 allows them) stores 3 as 0x03000000.
    if (version_ >= 0x10000 && (version_ & 0xffffu) == 0)
      throw UnsupportedError(file, "version", "big-endian GGUF is not supported (version reads " +
                                                  std::to_string(version_) + " little-endian, " +
                                                  std::to_string(__builtin_bswap32(version_)) + " byte-swapped)");
    if (version_ != 2 && version_ != 3)
      throw UnsupportedError(file, "version", "GGUF version " + std::to_string(version_) +
                                                  " is not supported (versions 2 and 3 are)");
    const auto n_tensors = c.read<uint64_t>("tensor_count", "tensor count");
    const auto n_kv = c.read<uint64_t>("kv_count", "metadata count");
    // Each kv takes >= 13 bytes (key length, value type, a 1-byte value); each tensor info
    // >= 32 (name length, n_dims, one dimension, type, offset). Checked before any allocation.
    if (n_kv > c.left() / 13)
      throw FormatError(file, "kv_count", std::to_string(n_kv) + " metadata entries cannot fit in the " +
                                              std::to_string(c.left()) + " bytes left in the file");
    if (n_tensors > c.left() / 32)
      throw FormatError(file, "tensor_count", std::to_string(n_tensors) + " tensor infos cannot fit in the " +
                                                  std::to_string(c.left()) + " bytes left in the file");

    // Metadata.
    kvs_.reserve(size_t(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
      const std::string where = "kv[" + std::to_string(k) + "]";
      std::string key = c.read_string(where, "key");
      const auto t = c.read<uint32_t>(key, "value type");
      if (!detail::gguf_value_type_known(t)) throw FormatError(file, key, "unknown value type " + std::to_string(t));
      GgufValue v = detail::read_gguf_value(c, GgufValueType(t), file, key, 0);
      if (kv_index_.count(key)) throw FormatError(file, key, "duplicate key");
      kv_index_.emplace(key, kvs_.size());
      kvs_.emplace_back(std::move(key), std::move(v));
    }
    alignment_ = kGgufDefaultAlignment;
    if (const GgufValue* a = find("general.alignment")) {
      if (a->type != GgufValueType::UINT32)
        throw FormatError(file, "general.alignment", "expected uint32, found " + a->type_name());
      if (a->u() == 0 || (a->u() & (a->u() - 1)) != 0)
        throw FormatError(file, "general.alignment", std::to_string(a->u()) + " is not a power of two");
      alignment_ = size_t(a->u());
    }

    // Tensor infos.
    tensors_.reserve(size_t(n_tensors));
    for (uint64_t k = 0; k < n_tensors; ++k) {
      GgufTensor t;
      const std::string where = "tensor[" + std::to_string(k) + "]";
      t.name = c.read_string(where, "tensor name");
      if (t.name.empty()) throw FormatError(file, where, "empty tensor name");  // nothing could refer to it
      const auto nd = c.read<uint32_t>(t.name, "n_dims");
      if (nd == 0 || nd > 4)
        throw FormatError(file, t.name, "n_dims " + std::to_string(nd) + " (expected 1 to 4)");
      uint64_t numel = 1;
      for (uint32_t d = 0; d < nd; ++d) {
        const auto n = c.read<uint64_t>(t.name, "dimension");
        if (n == 0 || n > uint64_t(std::numeric_limits<int64_t>::max()))
          throw FormatError(file, t.name, "ne[" + std::to_string(d) + "] = " + std::to_string(int64_t(n)) +
                                              " (dimensions must be positive)");
        t.ne.push_back(int64_t(n));
        if (__builtin_mul_overflow(numel, n, &numel) || numel > uint64_t(std::numeric_limits<int64_t>::max()))
          throw FormatError(file, t.name, "element count of ne " + ne_string(t.ne) + " overflows");
      }
      const auto type_id = c.read<uint32_t>(t.name, "type");
      const auto layout = detail::ggml_layout(type_id);
      if (!layout)
        throw UnsupportedError(file, t.name, "unknown ggml tensor type " + std::to_string(type_id));
      t.type = GgmlType(type_id);
      t.offset = c.read<uint64_t>(t.name, "offset");
      if (numel % layout->block_elems != 0 || uint64_t(t.ne[0]) % layout->block_elems != 0)
        throw FormatError(file, t.name, "row length " + std::to_string(t.ne[0]) + " (ne " + ne_string(t.ne) +
                                            ") is not a multiple of the " + std::string(ggml_type_name(t.type)) +
                                            " block of " + std::to_string(layout->block_elems) + " elements");
      uint64_t nbytes = 0;
      if (__builtin_mul_overflow(numel / layout->block_elems, uint64_t(layout->block_bytes), &nbytes))
        throw FormatError(file, t.name, "byte count overflows");
      t.nbytes = size_t(nbytes);
      if (tensor_index_.count(t.name)) throw FormatError(file, t.name, "duplicate tensor name");
      tensor_index_.emplace(t.name, tensors_.size());
      tensors_.push_back(std::move(t));
    }

    // Data section: after the infos, padded to the alignment.
    data_offset_ = detail::gguf_align_up(c.pos(), alignment_);
    const uint64_t data_size = data_offset_ <= bytes_.size() ? bytes_.size() - data_offset_ : 0;
    for (auto& t : tensors_) {
      if (t.offset % alignment_ != 0)
        throw FormatError(file, t.name, "data offset " + std::to_string(t.offset) +
                                            " is not a multiple of the alignment " + std::to_string(alignment_));
      if (data_offset_ > bytes_.size() || t.offset > data_size || t.nbytes > data_size - t.offset)
        throw FormatError(file, t.name, "data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                                            " bytes) runs past the end of the file (data section " +
                                            std::to_string(data_size) + " bytes from offset " +
                                            std::to_string(data_offset_) + ")");
      t.data = bytes_.data() + data_offset_ + t.offset;
    }
    std::vector<const GgufTensor*> by_offset;
    by_offset.reserve(tensors_.size());
    for (auto& t : tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t k = 1; k < by_offset.size(); ++k) {
      const auto *prev = by_offset[k - 1], *cur = by_offset[k];
      if (cur->offset < prev->offset + prev->nbytes)
        throw FormatError(file, cur->name, "data [" + std::to_string(cur->offset) + ", " +
                                               std::to_string(cur->offset + cur->nbytes) + ") overlaps tensor " +
                                               prev->name + " [" + std::to_string(prev->offset) + ", " +
                                               std::to_string(prev->offset + prev->nbytes) + ")");
    }
  }

  static std::string ne_string(const std::vector<int64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
  }

  std::string path_;
  std::span<const std::byte> bytes_;
  std::shared_ptr<const MappedFile> map_;
  uint32_t version_ = 0;
  size_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kvs_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace fathom::io
