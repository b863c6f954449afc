#pragma once
// The llama2.c tokenizer (tok512.bin and friends): int32 max_token_length, then per token a float
// merge score, an int32 byte length and the piece's bytes. Encoding reproduces run.c's `encode`
// token for token: BOS, a dummy-prefix " " token, one token per UTF-8 code point (bytes as
// <0xXX> tokens, id = byte + 3, when the code point is not a piece), then repeated merging of the
// adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties). run.c rescans
// the whole sequence per merge (quadratic); here a priority queue over a linked list makes the
// same choices in O(n log n), so whole documents can be tokenized.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/io/mmap.hpp"

namespace fathom::tok {

class Llama2cTokenizer {
 public:
  // `vocab_size` is the model's vocabulary (the file does not store it).
  static Llama2cTokenizer load(const std::filesystem::path& path, size_t vocab_size) {
    io::MappedFile map(path);
    return from_bytes(map.bytes(), vocab_size, path.string());
  }

  static Llama2cTokenizer from_bytes(std::span<const std::byte> bytes, size_t vocab_size,
                                     const std::string& label) {
    if (vocab_size < 3 || vocab_size > size_t(INT32_MAX))
      throw UsageError(label, "vocab_size", std::to_string(vocab_size) + " is not a usable vocabulary size");
    Llama2cTokenizer t;
    t.file_ = label;
    size_t off = 0;
    auto read_i32 = [&](const std::string& field, const char* what) {
      if (bytes.size() - off < 4)
        throw TokenizerError(label, field, std::string("file ends inside the ") + what);
      int32_t v;
      std::memcpy(&v, bytes.data() + off, 4);
      off += 4;
      return v;
    };
    const int32_t max_len = read_i32("max_token_length", "header");
    if (max_len <= 0) throw TokenizerError(label, "max_token_length", "must be positive, got " + std::to_string(max_len));
    t.max_token_length_ = size_t(max_len);
    // Every token takes at least 8 bytes (score and length), so a vocabulary larger than the
    // file can hold fails below at "file ends inside" without reserving for it first.
    const size_t fits = std::min(vocab_size, (bytes.size() - off) / 8);
    t.pieces_.reserve(fits);
    t.scores_.reserve(fits);
    for (size_t i = 0; i < vocab_size; ++i) {
      const std::string field = "token " + std::to_string(i);
      int32_t score_bits = read_i32(field, "score");
      float score;
      std::memcpy(&score, &score_bits, 4);
      const int32_t len = read_i32(field, "length");
      if (len < 0) throw TokenizerError(label, field, "negative length " + std::to_string(len));
      if (size_t(len) > t.max_token_length_)
        throw TokenizerError(label, field, "length " + std::to_string(len) + " exceeds max_token_length " +
                                               std::to_string(max_len));
      if (bytes.size() - off < size_t(len))
        throw TokenizerError(label, field, "file ends inside the piece (" + std::to_string(len) + " bytes)");
      t.pieces_.emplace_back(reinterpret_cast<const char*>(bytes.data() + off), size_t(len));
      off += size_t(len);
      t.scores_.push_back(score);
      t.lookup_.emplace(std::string(c_string(t.pieces_.back())), int32_t(i));  // first id wins on duplicates
    }
    if (off != bytes.size())
      throw TokenizerError(label, "", std::to_string(bytes.size() - off) + " bytes after token " +
                                          std::to_string(vocab_size - 1) +
                                          ": the file holds more tokens than the model's vocabulary");
    return t;
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const {
    std::vector<int32_t> ids;
    if (add_special) ids.push_back(bos_id());
    if (!text.empty()) ids.push_back(piece_or_byte(" "));
    // One token per UTF-8 code point (at most 4 bytes, as run.c), else its bytes.
    std::string buf;
    for (size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if ((c & 0xc0) != 0x80) buf.clear();
      buf.push_back(char(c));
      const bool continues = i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xc0) == 0x80;
      if (continues && buf.size() < 4) continue;
      if (auto it = lookup_.find(buf); it != lookup_.end()) {
        ids.push_back(it->second);
      } else {
        for (char b : buf) ids.push_back(byte_id(static_cast<unsigned char>(b)));
      }
      buf.clear();
    }
    merge(ids);
    return ids;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const {
    std::string out;
    for (size_t k = 0; k < ids.size(); ++k) {
      const int32_t id = ids[k];
      check_id(id, k);
      if (id == 1 || id == 2) continue;      // run.c never prints BOS/EOS
      if (skip_special && id == 0) continue;  // <unk>
      std::string_view piece = c_string(pieces_[size_t(id)]);
      // After BOS, sentencepiece strips the dummy-prefix space.
      if (k > 0 && ids[k - 1] == 1 && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
      if (auto byte = parse_byte_piece(piece)) out.push_back(char(*byte));
      else out.append(piece);
    }
    return out;
  }

  std::string token_text(int32_t id) const {
    check_id(id, 0);
    return pieces_[size_t(id)];
  }
  float score(int32_t id) const {
    check_id(id, 0);
    return scores_[size_t(id)];
  }
  size_t vocab_size() const { return pieces_.size(); }
  size_t max_token_length() const { return max_token_length_; }
  int32_t bos_id() const { return 1; }
  std::vector<int32_t> eos_ids() const { return {2}; }
  const std::string& file() const { return file_; }

 private:
  // run.c handles pieces as C strings: a piece with a NUL byte ends there.
  static std::string_view c_string(const std::string& s) { return {s.c_str(), std::strlen(s.c_str())}; }

  // run.c: sscanf(piece, "<0x%02hhX>", &byte) == 1, i.e. "<0x" then one or two hex digits.
  static std::optional<uint8_t> parse_byte_piece(std::string_view p) {
    if (p.size() < 4 || p.substr(0, 3) != "<0x") return std::nullopt;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int v = hex(p[3]);
    if (v < 0) return std::nullopt;
    if (p.size() > 4 && hex(p[4]) >= 0) v = v * 16 + hex(p[4]);
    return uint8_t(v);
  }

  void check_id(int32_t id, size_t position) const {
    if (id < 0 || size_t(id) >= pieces_.size())
      throw TokenizerError(file_, "token id", "id " + std::to_string(id) + " at position " + std::to_string(position) +
                                                  " is outside the vocabulary [0, " + std::to_string(pieces_.size()) + ")");
  }

  int32_t byte_id(unsigned char b) const {
    const size_t id = size_t(b) + 3;
    if (id >= pieces_.size())
      throw TokenizerError(file_, "byte fallback", "byte " + std::to_string(b) + " has no token (vocabulary of " +
                                                       std::to_string(pieces_.size()) + ")");
    return int32_t(id);
  }
  int32_t piece_or_byte(const std::string& s) const {
    auto it = lookup_.find(s);
    return it != lookup_.end() ? it->second : byte_id(static_cast<unsigned char>(s[0]));
  }

  // The id of the piece that concatenates a and b, or -1; score must beat run.c's initial -1e10.
  int32_t merged_id(int32_t a, int32_t b) const {
    std::string s(c_string(pieces_[size_t(a)]));
    s.append(c_string(pieces_[size_t(b)]));
    auto it = lookup_.find(s);
    if (it == lookup_.end() || !(scores_[size_t(it->second)] > -1e10f)) return -1;
    return it->second;
  }

  void merge(std::vector<int32_t>& ids) const {
    const size_t n = ids.size();
    if (n < 2) return;
    // Doubly linked list over positions; a node keeps its original position, so list order and
    // position order agree and "leftmost pair" is "smallest left position".
    std::vector<int32_t> prev(n), next(n);
    std::vector<char> alive(n, 1);
    for (size_t i = 0; i < n; ++i) { prev[i] = int32_t(i) - 1; next[i] = i + 1 < n ? int32_t(i + 1) : -1; }
    struct Cand { float score; int32_t left, right, left_id, right_id, merged; };
    auto worse = [](const Cand& a, const Cand& b) {
      return a.score != b.score ? a.score < b.score : a.left > b.left;
    };
    std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> pq(worse);
    auto push = [&](int32_t l) {
      if (l < 0) return;
      const int32_t r = next[size_t(l)];
      if (r < 0) return;
      const int32_t m = merged_id(ids[size_t(l)], ids[size_t(r)]);
      if (m >= 0) pq.push({scores_[size_t(m)], l, r, ids[size_t(l)], ids[size_t(r)], m});
    };
    for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
    while (!pq.empty()) {
      const Cand c = pq.top();
      pq.pop();
      // Stale if either side was merged away or changed since the candidate was made.
      if (!alive[size_t(c.left)] || !alive[size_t(c.right)] || next[size_t(c.left)] != c.right ||
          ids[size_t(c.left)] != c.left_id || ids[size_t(c.right)] != c.right_id)
        continue;
      ids[size_t(c.left)] = c.merged;
      alive[size_t(c.right)] = 0;
      next[size_t(c.left)] = next[size_t(c.right)];
      if (next[size_t(c.right)] >= 0) prev[size_t(next[size_t(c.right)])] = c.left;
      push(prev[size_t(c.left)]);
      push(c.left);
    }
    size_t w = 0;
    for (int32_t i = 0; i >= 0; i = next[size_t(i)]) ids[w++] = ids[size_t(i)];
    ids.resize(w);
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> lookup_;
  size_t max_token_length_ = 0;
  std::string file_;
};

}  // namespace fathom::tok
