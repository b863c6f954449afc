#pragma once
// Shared helpers of the tokenizer tests: fixture loading, the generated big inputs (same
// generators as tools/gen_tokenizer_fixtures.py) and FNV-1a hashes.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "fathom/core/shared_path.hpp"
#include "fathom/tokenizer/tokenizer.hpp"

namespace tokfix {

inline std::filesystem::path fixture_dir() {
  return std::filesystem::path(FATHOM_SOURCE_DIR) / "tests" / "fixtures" / "tokenizer";
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline nlohmann::json load_json(const std::string& name) { return nlohmann::json::parse(slurp(fixture_dir() / name)); }

// Each real tokenizer is loaded once per test program.
inline const fathom::tok::Tokenizer& real(const std::string& name) {
  static std::map<std::string, std::unique_ptr<fathom::tok::Tokenizer>> cache;
  auto& p = cache[name];
  if (!p) p = std::make_unique<fathom::tok::Tokenizer>(
              fathom::tok::Tokenizer::from_dir(fathom::shared_file("tokenizers/" + name)));
  return *p;
}

inline std::string hex_decode(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

// The text of a corpus case (raw bytes for "hex" cases: maybe invalid UTF-8).
inline std::string case_text(const nlohmann::json& c) {
  return c.contains("text") ? c["text"].get<std::string>() : hex_decode(c["hex"].get<std::string>());
}

inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
inline std::string hex64(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}
inline std::string fnv1a_ids(std::span<const int32_t> ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t id : ids) {
    unsigned char b[4] = {static_cast<unsigned char>(id), static_cast<unsigned char>(id >> 8),
                          static_cast<unsigned char>(id >> 16), static_cast<unsigned char>(id >> 24)};
    h = fnv1a(b, 4, h);
  }
  return hex64(h);
}

// First 1,000,000 bytes of WikiText-2 test, cut back to a whole character.
inline std::string wikitext_1mb() {
  std::string s = slurp(fathom::shared_file("data/wikitext2/wikitext-2-raw-test.txt"));
  s.resize(std::min<size_t>(s.size(), 1000000));
  size_t k = s.size();
  while (k > 0 && (static_cast<unsigned char>(s[k - 1]) & 0xC0) == 0x80) --k;  // continuation bytes
  if (k > 0 && static_cast<unsigned char>(s[k - 1]) >= 0xC0) {
    const unsigned char lead = static_cast<unsigned char>(s[k - 1]);
    const size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (s.size() - (k - 1) < need) s.resize(k - 1);
  }
  return s;
}

// LCG-drawn code points, identical to gen_random_mix() in the Python script.
inline std::string random_mix(size_t n = 300000, uint64_t seed = 20250611) {
  static const std::pair<char32_t, char32_t> pools[] = {
      {0x61, 0x7A}, {0x61, 0x7A}, {0x61, 0x7A}, {0x41, 0x5A}, {0x30, 0x39}, {0x20, 0x20},
      {0x20, 0x20}, {0x20, 0x20}, {0x0A, 0x0A}, {0x21, 0x2F}, {0xE0, 0xFF}, {0x300, 0x36F},
      {0x391, 0x3C9}, {0x410, 0x44F}, {0x627, 0x64A}, {0x905, 0x939}, {0xE01, 0xE2E},
      {0x3041, 0x3096}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0x1F600, 0x1F64F}, {0x1F3FB, 0x1F3FF},
      {0x200D, 0x200D}, {0x09, 0x0D}, {0x10000, 0x1007F}};
  const uint64_t npools = sizeof pools / sizeof pools[0];
  uint64_t s = seed;
  const auto next = [&] { s = s * 6364136223846793005ull + 1442695040888963407ull; return s; };
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const auto& p = pools[(next() >> 33) % npools];
    const char32_t c = p.first + static_cast<char32_t>((next() >> 33) % (p.second - p.first + 1));
    fathom::tok::detail::append_utf8(out, c);
  }
  return out;
}

}  // namespace tokfix
