#pragma once
// A tiny GGUF writer for the reader tests: every field is written explicitly (little-endian), so a
// test can make exactly the malformed file it needs (wrong counts, lengths, types, offsets).
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace fathom::test {

struct GgufBuilder {
  uint32_t version = 3;
  std::string kvs;      // encoded kv entries
  std::string infos;    // encoded tensor infos
  std::string data;     // data section (offsets relative to its start)
  uint64_t n_kv = 0, n_tensors = 0;
  size_t alignment = 32;

  static void put_u32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
  static void put_u64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
  static void put_str(std::string& s, const std::string& v) {
    put_u64(s, v.size());
    s += v;
  }
  template <class T> static std::string raw(T v) { return std::string(reinterpret_cast<const char*>(&v), sizeof(T)); }
  static std::string str_value(const std::string& v) {
    std::string s;
    put_str(s, v);
    return s;
  }
  // Array value body: element type, count, then the already-encoded elements.
  static std::string array_value(uint32_t elem_type, uint64_t count, const std::string& elems) {
    std::string s;
    put_u32(s, elem_type);
    put_u64(s, count);
    return s + elems;
  }

  // A kv whose value bytes are given encoded.
  GgufBuilder& kv(const std::string& key, uint32_t type, const std::string& value) {
    put_str(kvs, key);
    put_u32(kvs, type);
    kvs += value;
    ++n_kv;
    return *this;
  }
  GgufBuilder& kv_u32(const std::string& key, uint32_t v) { return kv(key, 4, raw(v)); }
  GgufBuilder& kv_str(const std::string& key, const std::string& v) { return kv(key, 8, str_value(v)); }

  // A tensor info only (the test controls the offset and the data).
  GgufBuilder& info(const std::string& name, uint32_t type, const std::vector<uint64_t>& ne, uint64_t offset) {
    put_str(infos, name);
    put_u32(infos, uint32_t(ne.size()));
    for (auto d : ne) put_u64(infos, d);
    put_u32(infos, type);
    put_u64(infos, offset);
    ++n_tensors;
    return *this;
  }
  // A tensor info plus its bytes appended at the next aligned offset of the data section.
  GgufBuilder& tensor(const std::string& name, uint32_t type, const std::vector<uint64_t>& ne,
                      const std::string& bytes) {
    data.append((alignment - data.size() % alignment) % alignment, '\0');
    info(name, type, ne, data.size());
    data += bytes;
    return *this;
  }

  // Header + kvs + infos, padded to the alignment, + data. Counts may be overridden.
  std::string build(int64_t tensor_count = -1, int64_t kv_count = -1) const {
    std::string s = "GGUF";
    put_u32(s, version);
    put_u64(s, tensor_count >= 0 ? uint64_t(tensor_count) : n_tensors);
    put_u64(s, kv_count >= 0 ? uint64_t(kv_count) : n_kv);
    s += kvs;
    s += infos;
    if (n_tensors) s.append((alignment - s.size() % alignment) % alignment, '\0');
    return s + data;
  }
};

inline std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace fathom::test
