#pragma once
// safetensors: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then
// the tensor bytes (offsets are relative to the byte after the header). The reader maps the file
// and hands out zero-copy views; every field of the header is checked before a view is made, so a
// malformed file is a FormatError naming the file, the tensor and the reason, never a crash.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/io/json.hpp"
#include "fathom/io/mmap.hpp"
#include "fathom/io/tensor_store.hpp"

namespace fathom::io {

// The safetensors reference implementation refuses headers above 100 MB; so do we, before
// allocating anything for them.
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the start of the data section
};

struct SafetensorsHeader {
  uint64_t header_size = 0;       // N
  uint64_t data_start = 0;        // 8 + N: file offset of the data section
  uint64_t data_size = 0;         // file size - data_start
  std::vector<SafetensorsEntry> tensors;  // in data order (by begin offset, then name)
  std::map<std::string, std::string> metadata;
};

namespace detail {

inline std::optional<DType> safetensors_dtype(std::string_view s) {
  if (s == "F32") return DType::F32;
  if (s == "BF16") return DType::BF16;
  if (s == "F16") return DType::F16;
  if (s == "I64") return DType::I64;
  if (s == "I32") return DType::I32;
  if (s == "I8") return DType::I8;
  if (s == "U8") return DType::U8;
  if (s == "BOOL") return DType::BOOL;
  return std::nullopt;
}

inline std::optional<uint64_t> json_uint(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if (i >= 0) return uint64_t(i);
  }
  return std::nullopt;
}

// a * b, or nullopt on overflow.
inline std::optional<uint64_t> mul_checked(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline SafetensorsEntry parse_safetensors_entry(const std::string& file, const std::string& name,
                                                const Json& v, uint64_t data_size) {
  auto fail = [&](const std::string& reason) -> FormatError { return FormatError(file, name, reason); };
  if (!v.is_object()) throw fail("expected an object {dtype, shape, data_offsets}, got " + json_kind(v));
  SafetensorsEntry e;
  e.name = name;

  auto dt = v.find("dtype");
  if (dt == v.end()) throw fail("dtype missing");
  if (!dt->is_string()) throw fail("dtype: expected string, got " + json_kind(*dt));
  auto dts = dt->get<std::string>();
  auto parsed = safetensors_dtype(dts);
  if (!parsed)
    throw UnsupportedError(file, name, "dtype " + dts +
                                           " is not supported (F32, BF16, F16, I64, I32, I8, U8, BOOL are)");
  e.dtype = *parsed;

  auto sh = v.find("shape");
  if (sh == v.end()) throw fail("shape missing");
  if (!sh->is_array()) throw fail("shape: expected a list of non-negative integers, got " + json_kind(*sh));
  uint64_t numel = 1;
  for (size_t i = 0; i < sh->size(); ++i) {
    auto d = json_uint((*sh)[i]);
    if (!d || *d > uint64_t(INT64_MAX))
      throw fail("shape[" + std::to_string(i) + "]: expected a non-negative integer, got " +
                 ((*sh)[i].is_number_integer() ? (*sh)[i].dump() : json_kind((*sh)[i])));
    e.shape.push_back(int64_t(*d));
    auto n = mul_checked(numel, *d);
    if (!n) throw fail("shape " + shape_string(e.shape) + ": element count overflows");
    numel = *n;
  }

  auto off = v.find("data_offsets");
  if (off == v.end()) throw fail("data_offsets missing");
  if (!off->is_array() || off->size() != 2)
    throw fail("data_offsets: expected [begin, end], got " +
               (off->is_array() ? "a list of " + std::to_string(off->size()) : json_kind(*off)));
  auto b = json_uint((*off)[0]), en = json_uint((*off)[1]);
  if (!b || !en) throw fail("data_offsets: expected non-negative integers");
  if (*b > *en)
    throw fail("data_offsets [" + std::to_string(*b) + ", " + std::to_string(*en) + "]: begin after end");
  if (*en > data_size)
    throw fail("data_offsets [" + std::to_string(*b) + ", " + std::to_string(*en) +
               "] run past the end of the data section (" + std::to_string(data_size) + " bytes)");
  e.begin = *b;
  e.end = *en;

  auto bytes = mul_checked(numel, dtype_size(e.dtype));
  if (!bytes || *bytes != e.end - e.begin)
    throw fail("byte count " + std::to_string(e.end - e.begin) + " does not match shape " +
               shape_string(e.shape) + " x " + std::to_string(dtype_size(e.dtype)) + " bytes (" +
               dts + ")");
  return e;
}

}  // namespace detail

// Parses and validates the header of a safetensors file given all of its bytes (the data section
// is only bounds-checked, not read). `file_label` names the file in errors.
inline SafetensorsHeader parse_safetensors_header(std::span<const std::byte> bytes,
                                                  const std::string& file_label) {
  const std::string& file = file_label;
  if (bytes.size() < 8)
    throw FormatError(file, "header length", "file is " + std::to_string(bytes.size()) +
                                                 " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint64_t(std::to_integer<uint8_t>(bytes[size_t(i)]));
  if (n > kMaxSafetensorsHeader)
    throw FormatError(file, "header length", std::to_string(n) + " bytes is absurd (limit " +
                                                 std::to_string(kMaxSafetensorsHeader) + ")");
  if (n > bytes.size() - 8)
    throw FormatError(file, "header length",
                      std::to_string(n) + " bytes runs past the end of the file (" +
                          std::to_string(bytes.size()) + " bytes)");
  SafetensorsHeader h;
  h.header_size = n;
  h.data_start = 8 + n;
  h.data_size = bytes.size() - h.data_start;

  std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, size_t(n));
  Json j = parse_json(text, file);
  if (!j.is_object()) throw FormatError(file, "header", "expected a JSON object, got " + detail::json_kind(j));

  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object())
        throw FormatError(file, "__metadata__", "expected an object of strings, got " + detail::json_kind(*it));
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          throw FormatError(file, "__metadata__." + m.key(),
                            "expected string, got " + detail::json_kind(*m));
        h.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(detail::parse_safetensors_entry(file, it.key(), *it, h.data_size));
  }

  // Data order; then the overlap check (empty tensors own no bytes and cannot overlap).
  std::stable_sort(h.tensors.begin(), h.tensors.end(),
                   [](const auto& a, const auto& b) { return a.begin < b.begin; });
  const SafetensorsEntry* prev = nullptr;
  for (const auto& cur : h.tensors) {
    if (cur.end == cur.begin) continue;
    if (prev && cur.begin < prev->end)
      throw FormatError(file, cur.name,
                        "bytes [" + std::to_string(cur.begin) + ", " + std::to_string(cur.end) +
                            ") overlap tensor " + prev->name + " [" + std::to_string(prev->begin) +
                            ", " + std::to_string(prev->end) + ")");
    if (!prev || cur.end > prev->end) prev = &cur;
  }
  return h;
}

inline SafetensorsHeader read_safetensors_header(const std::filesystem::path& file) {
  auto map = MappedFile::open(file);
  return parse_safetensors_header(map->bytes(), file.string());
}

namespace detail {

// Adds the tensors of a safetensors file held in `bytes` to `store`; returns their names. Views
// point into `bytes` (the caller keeps them alive with the store; `mapped`: they are a MappedFile's)
// unless a tensor is misaligned for its element type (legal in the format), then it is copied.
inline std::vector<std::string> add_safetensors_bytes(TensorStore& store, std::span<const std::byte> bytes,
                                                      const std::string& file, bool mapped = false) {
  auto h = parse_safetensors_header(bytes, file);
  std::vector<std::string> names;
  for (auto& e : h.tensors) {
    if (store.contains(e.name))
      throw FormatError(file, e.name, "tensor also present in " + store.get(e.name).file);
    const std::byte* p = bytes.data() + h.data_start + e.begin;
    const size_t nbytes = size_t(e.end - e.begin);
    if (nbytes > 0 && reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) {
      store.add_owned(e.name, e.dtype, e.shape, std::vector<std::byte>(p, p + nbytes), file);
    } else {
      store.add(TensorView{e.name, e.dtype, e.shape, nbytes ? p : nullptr, nbytes, file, mapped});
    }
    names.push_back(e.name);
  }
  return names;
}

// Maps one file and adds its tensors to `store`; returns their names.
inline std::vector<std::string> add_safetensors_file(TensorStore& store, const std::filesystem::path& path) {
  auto map = MappedFile::open(path);
  auto names = add_safetensors_bytes(store, map->bytes(), path.string(), /*mapped=*/true);
  store.keep_alive(map);
  return names;
}

inline void load_safetensors_index(TensorStore& store, const std::filesystem::path& index_path) {
  const std::string file = index_path.string();
  Json j = read_json_file(index_path);
  if (!j.is_object()) throw FormatError(file, "", "expected a JSON object, got " + json_kind(j));
  auto wm = j.find("weight_map");
  if (wm == j.end()) throw FormatError(file, "weight_map", "missing");
  if (!wm->is_object()) throw FormatError(file, "weight_map", "expected an object, got " + json_kind(*wm));

  std::map<std::string, std::vector<std::string>> by_shard;  // shard file -> tensor names listed
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string())
      throw FormatError(file, "weight_map." + it.key(), "expected a shard file name, got " + json_kind(*it));
    by_shard[it->get<std::string>()].push_back(it.key());
  }
  const auto dir = index_path.parent_path();
  for (auto& [shard, listed] : by_shard) {
    const auto shard_path = dir / shard;
    if (!std::filesystem::is_regular_file(shard_path))
      throw IoError(shard_path.string(), "", "shard listed in " + file + " (for " + listed.front() +
                                                 ") not found");
    auto names = add_safetensors_file(store, shard_path);
    std::set<std::string> have(names.begin(), names.end());
    for (auto& name : listed)
      if (!have.count(name))
        throw FormatError(shard_path.string(), name, "listed in " + file + " but not in this shard");
  }
}

}  // namespace detail

// Loads a `.safetensors` file, a sharded checkpoint's `model.safetensors.index.json`, or a folder
// holding either (model.safetensors first). All shards stay mapped while the store lives.
inline TensorStore load_safetensors(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  TensorStore store;
  store.set_origin(path.string());
  if (fs::is_directory(path)) {
    if (fs::exists(path / "model.safetensors")) {
      detail::add_safetensors_file(store, path / "model.safetensors");
    } else if (fs::exists(path / "model.safetensors.index.json")) {
      detail::load_safetensors_index(store, path / "model.safetensors.index.json");
    } else {
      throw IoError(path.string(), "",
                    "folder has neither model.safetensors nor model.safetensors.index.json");
    }
  } else if (path.extension() == ".json") {
    detail::load_safetensors_index(store, path);
  } else {
    detail::add_safetensors_file(store, path);
  }
  return store;
}

// A tensor to be written whose bytes are produced while writing (e.g. converted row by row), so
// that saving a large model needs no second copy of it in memory.
struct TensorSource {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t nbytes = 0;
  std::function<void(std::ostream&)> write;  // writes exactly nbytes bytes
};

// Writes tensors in the given order after a header padded with spaces to a multiple of 8 bytes
// (so every tensor of a file we write starts 8-byte aligned when offsets are multiples of 8).
inline void write_safetensors(const std::filesystem::path& path, const std::vector<TensorSource>& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  const std::string file = path.string();
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header["__metadata__"];
    m = nlohmann::ordered_json::object();
    for (auto& [k, v] : metadata) m[k] = v;
  }
  uint64_t offset = 0;
  std::set<std::string> seen;
  for (auto& t : tensors) {
    if (t.name == "__metadata__" || !seen.insert(t.name).second)
      throw UsageError(file, t.name, "duplicate or reserved tensor name");
    if (t.dtype == DType::Q8)
      throw UnsupportedError(file, t.name, "Q8 tensors have no safetensors dtype (write int8 values and scales)");
    size_t numel = 1;
    for (auto d : t.shape) {
      if (d < 0) throw UsageError(file, t.name, "negative dimension in shape " + shape_string(t.shape));
      numel *= size_t(d);
    }
    if (numel * dtype_size(t.dtype) != t.nbytes)
      throw UsageError(file, t.name, std::to_string(t.nbytes) + " bytes do not match shape " +
                                         shape_string(t.shape) + " of " + std::string(dtype_name(t.dtype)));
    if (t.nbytes && !t.write) throw UsageError(file, t.name, "no data");
    auto& e = header[t.name];
    e["dtype"] = std::string(dtype_name(t.dtype));
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + t.nbytes};
    offset += t.nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // names or metadata that are not UTF-8
    throw UsageError(file, "", std::string("cannot encode header: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError(file, "", "cannot open for writing");
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), std::streamsize(text.size()));
  for (auto& t : tensors) {
    if (!t.nbytes) continue;
    const auto before = out.tellp();
    t.write(out);
    if (out && out.tellp() - before != std::streamoff(t.nbytes))
      throw UsageError(file, t.name, "writer produced " + std::to_string(out.tellp() - before) +
                                         " bytes instead of " + std::to_string(t.nbytes));
  }
  out.flush();
  if (!out) throw IoError(file, "", "write failed (disk full?)");
}

// A TensorSource whose bytes are already in memory (no data: write_safetensors reports it).
inline TensorSource bytes_source(std::string name, DType dt, std::vector<int64_t> shape,
                                 const void* data, size_t nbytes) {
  TensorSource s{std::move(name), dt, std::move(shape), nbytes, nullptr};
  if (data)
    s.write = [data, nbytes](std::ostream& o) { o.write(static_cast<const char*>(data), std::streamsize(nbytes)); };
  return s;
}

// Tensors already in memory.
inline void save_safetensors(const std::filesystem::path& path, const std::vector<TensorView>& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  std::vector<TensorSource> src;
  src.reserve(tensors.size());
  for (const TensorView& t : tensors) src.push_back(bytes_source(t.name, t.dtype, t.shape, t.data, t.nbytes));
  write_safetensors(path, src, metadata);
}

// Element conversions for tests, lenses and dumps (not for hot loops).
inline std::vector<float> to_f32(const TensorView& t) {
  const size_t n = t.nbytes / std::max<size_t>(1, dtype_size(t.dtype));
  std::vector<float> out(n);
  switch (t.dtype) {
    case DType::F32:
      if (n) std::memcpy(out.data(), t.data, n * 4);
      break;
    case DType::BF16:
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = t.dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
      }
      break;
    default:
      throw UnsupportedError(t.file, t.name, "to_f32: dtype " + std::string(dtype_name(t.dtype)) +
                                                 " is not a float type");
  }
  return out;
}

inline std::vector<int64_t> to_i64(const TensorView& t) {
  std::vector<int64_t> out;
  if (t.dtype == DType::I64) {
    out.resize(t.nbytes / 8);
    if (!out.empty()) std::memcpy(out.data(), t.data, out.size() * 8);
  } else if (t.dtype == DType::I32) {
    out.resize(t.nbytes / 4);
    for (size_t i = 0; i < out.size(); ++i) {
      int32_t v;
      std::memcpy(&v, t.data + 4 * i, 4);
      out[i] = v;
    }
  } else {
    throw UnsupportedError(t.file, t.name, "to_i64: dtype " + std::string(dtype_name(t.dtype)) +
                                               " is not an integer type");
  }
  return out;
}

}  // namespace fathom::io
