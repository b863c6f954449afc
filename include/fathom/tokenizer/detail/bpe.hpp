#pragma once
// The BPE model of tokenizer.json: vocabulary, merges by rank, byte fallback, unk, and
// ignore_merges. For byte-level vocabularies the model reads raw bytes (each byte starts as the
// id of its GPT-2 byte character), which is the reference's ByteLevel pre-tokenizer + BPE
// without materialising the mapped string.
//
// Merging applies the lowest-rank adjacent pair first, the leftmost on ties: the reference's
// priority queue keyed by (rank, position). Short words use a direct scan, long ones a heap.
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fathom/tokenizer/detail/byte_level.hpp"
#include "fathom/tokenizer/detail/json_util.hpp"
#include "fathom/tokenizer/detail/utf8.hpp"

namespace fathom::tok::detail {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// (left id, right id) -> (rank, merged id), open addressing with linear probing.
class PairTable {
 public:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, {kNone, -1});
    mask_ = cap - 1;
  }
  // Keeps the first (lowest-rank) entry when a pair repeats, as the reference does.
  void insert(int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    const uint64_t k = key(a, b);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (keys_[i] == k) return;
      if (keys_[i] == kEmpty) { keys_[i] = k; vals_[i] = {rank, merged}; return; }
    }
  }
  // Rank (kNone if the pair does not merge) and merged id.
  std::pair<uint32_t, int32_t> find(int32_t a, int32_t b) const {
    const uint64_t k = key(a, b);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (keys_[i] == k) return vals_[i];
      if (keys_[i] == kEmpty) return {kNone, -1};
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  size_t slot(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> 17) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<std::pair<uint32_t, int32_t>> vals_;
  size_t mask_ = 0;
};

class Bpe {
 public:
  // `byte_level`: the pre-tokenizer chain ends in ByteLevel, so words arrive as raw bytes.
  void load(const JsonCtx& ctx, const json& m, const std::string& path, bool byte_level) {
    byte_level_ = byte_level;
    if (!m.is_object()) ctx.fail(path, "expected an object");
    const std::string type = ctx.str_or(m, "type", path, "BPE");
    if (type != "BPE") ctx.unsupported(path + ".type", "model type \"" + type + "\"");
    if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
      ctx.unsupported(path + ".dropout", "BPE dropout (encoding would be random)");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (!ctx.str_or(m, k, path, "").empty()) ctx.unsupported(path + "." + k, std::string(k) + " in BPE");
    byte_fallback_ = ctx.boolean_or(m, "byte_fallback", path, false);
    fuse_unk_ = ctx.boolean_or(m, "fuse_unk", path, false);
    ignore_merges_ = ctx.boolean_or(m, "ignore_merges", path, false);

    const json& v = ctx.at(m, "vocab", path);
    if (!v.is_object()) ctx.fail(path + ".vocab", "expected an object {token: id}");
    vocab_.reserve(v.size() * 2);
    int32_t max_id = -1;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!it.value().is_number_integer()) ctx.fail(path + ".vocab[\"" + it.key() + "\"]", "expected an integer id");
      const long long id = it.value().get<long long>();
      if (id < 0 || id > std::numeric_limits<int32_t>::max() / 2)
        ctx.fail(path + ".vocab[\"" + it.key() + "\"]", "id " + std::to_string(id) + " out of range");
      vocab_.emplace(it.key(), static_cast<int32_t>(id));
      max_id = std::max(max_id, static_cast<int32_t>(id));
    }
    id_to_token_.assign(size_t(max_id + 1), std::string());
    std::vector<bool> seen(size_t(max_id + 1), false);
    for (const auto& [tok, id] : vocab_) {
      if (seen[size_t(id)]) ctx.fail(path + ".vocab", "id " + std::to_string(id) + " used twice");
      seen[size_t(id)] = true;
      id_to_token_[size_t(id)] = tok;
    }
    for (size_t i = 0; i < seen.size(); ++i)
      if (!seen[i]) holes_ = true;

    const std::string unk = ctx.str_or(m, "unk_token", path, "");
    if (!unk.empty()) {
      auto it = vocab_.find(unk);
      if (it == vocab_.end()) ctx.fail(path + ".unk_token", "\"" + unk + "\" is not in the vocabulary");
      unk_id_ = it->second;
    }

    // Initial symbols: byte ids (byte-level) or single-character ids + <0xNN> fallback ids.
    byte_id_.fill(-1);
    fallback_id_.fill(-1);
    if (byte_level_) {
      const auto& t = byte_level_tables();
      for (int b = 0; b < 256; ++b)
        if (auto it = vocab_.find(t.byte_to_utf8[b]); it != vocab_.end()) byte_id_[b] = it->second;
      raw_vocab_.reserve(vocab_.size() * 2);
      std::string raw;
      for (const auto& [tok, id] : vocab_) {
        raw.clear();
        if (byte_level_decode(tok, raw)) raw_vocab_.emplace(raw, id);
      }
    } else {
      bmp_id_.assign(0x10000, -1);
      for (const auto& [tok, id] : vocab_) {
        if (tok.empty()) continue;
        size_t n = utf8_seq_len(tok, 0);
        if (n != tok.size()) continue;  // not exactly one character
        size_t i = 0;
        const char32_t c = next_cp(tok, i);
        if (c < 0x10000) bmp_id_[c] = id; else astral_id_[c] = id;
      }
      if (byte_fallback_)
        for (int b = 0; b < 256; ++b) {
          static const char* hex = "0123456789ABCDEF";
          const std::string name = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
          if (auto it = vocab_.find(name); it != vocab_.end()) fallback_id_[b] = it->second;
        }
    }

    const json& merges = ctx.at(m, "merges", path);
    if (!merges.is_array()) ctx.fail(path + ".merges", "expected an array");
    pairs_.reserve(merges.size());
    std::string a, b, ab;
    for (size_t r = 0; r < merges.size(); ++r) {
      const json& e = merges[r];
      const std::string where = path + ".merges[" + std::to_string(r) + "]";
      if (e.is_string()) {  // "left right"
        const std::string& s = e.get_ref<const std::string&>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          ctx.fail(where, "expected \"left right\" (two tokens separated by one space), got \"" + s + "\"");
        a.assign(s, 0, sp);
        b.assign(s, sp + 1);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        ctx.fail(where, "expected \"left right\" or [left, right]");
      }
      auto ia = vocab_.find(a), ib = vocab_.find(b);
      if (ia == vocab_.end()) ctx.fail(where, "merge names unknown token \"" + a + "\"");
      if (ib == vocab_.end()) ctx.fail(where, "merge names unknown token \"" + b + "\"");
      ab = a + b;
      auto iab = vocab_.find(ab);
      if (iab == vocab_.end()) ctx.fail(where, "merged token \"" + ab + "\" is not in the vocabulary");
      pairs_.insert(ia->second, ib->second, static_cast<uint32_t>(r), iab->second);
    }
  }

  size_t size() const { return id_to_token_.size(); }
  const std::vector<std::string>& id_to_token() const { return id_to_token_; }
  const StringMap& vocab() const { return vocab_; }
  bool has_id(int32_t id) const {
    return id >= 0 && size_t(id) < id_to_token_.size() && (!holes_ || vocab_.count(id_to_token_[size_t(id)]));
  }

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view w, std::vector<int32_t>& out) const {
    if (w.empty()) return;
    if (ignore_merges_) {
      const StringMap& m = byte_level_ ? raw_vocab_ : vocab_;
      if (auto it = m.find(w); it != m.end()) { out.push_back(it->second); return; }
    }
    const bool cacheable = w.size() <= kMaxCachedWord;
    if (cacheable) {
      std::shared_lock lk(cache_mu_);
      if (auto it = cache_.find(w); it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t before = out.size();
    std::vector<int32_t>& sym = scratch();
    sym.clear();
    initial_symbols(w, sym);
    if (sym.size() <= kScanLimit) merge_scan(sym);
    else merge_heap(sym);
    out.insert(out.end(), sym.begin(), sym.end());
    if (cacheable) {
      std::unique_lock lk(cache_mu_);
      if (cache_.size() < kMaxCacheEntries)
        cache_.emplace(std::string(w), std::vector<int32_t>(out.begin() + long(before), out.end()));
    }
  }

 private:
  static constexpr size_t kMaxCachedWord = 64, kMaxCacheEntries = 200000, kScanLimit = 48;

  static std::vector<int32_t>& scratch() {
    thread_local std::vector<int32_t> v;
    return v;
  }

  void initial_symbols(std::string_view w, std::vector<int32_t>& sym) const {
    if (byte_level_) {
      for (unsigned char c : w) {
        // A vocabulary missing a byte character cannot spell it; the reference drops it too
        // unless an unk token exists.
        if (byte_id_[c] >= 0) sym.push_back(byte_id_[c]);
        else if (unk_id_ >= 0) push_unk(sym, 1);
      }
      flush_unk(sym);
      return;
    }
    for (size_t i = 0; i < w.size();) {
      const size_t start = i;
      const char32_t c = next_cp(w, i);
      int32_t id = -1;
      if (c < 0x10000) id = bmp_id_[c];
      else if (auto it = astral_id_.find(c); it != astral_id_.end()) id = it->second;
      if (id >= 0) { flush_unk(sym); sym.push_back(id); continue; }
      if (byte_fallback_) {
        bool all = true;
        for (size_t k = start; k < i; ++k) all = all && fallback_id_[static_cast<unsigned char>(w[k])] >= 0;
        if (all) {  // note: a pending unk is not flushed first, as in the reference
          for (size_t k = start; k < i; ++k) sym.push_back(fallback_id_[static_cast<unsigned char>(w[k])]);
          continue;
        }
      }
      if (unk_id_ >= 0) push_unk(sym, i - start);
    }
    flush_unk(sym);
  }
  // Pending unk handling: fuse_unk folds consecutive unknown characters into one unk.
  void push_unk(std::vector<int32_t>& sym, size_t) const {
    if (pending_unk_ && fuse_unk_) return;
    if (pending_unk_) sym.push_back(unk_id_);
    pending_unk_ = true;
  }
  void flush_unk(std::vector<int32_t>& sym) const {
    if (pending_unk_) { sym.push_back(unk_id_); pending_unk_ = false; }
  }

  void merge_scan(std::vector<int32_t>& s) const {
    if (s.size() < 2) return;
    std::array<uint32_t, kScanLimit> rank;
    std::array<int32_t, kScanLimit> nid;
    size_t n = s.size();
    for (size_t i = 0; i + 1 < n; ++i) std::tie(rank[i], nid[i]) = pairs_.find(s[i], s[i + 1]);
    while (n > 1) {
      size_t best = 0;
      for (size_t i = 1; i + 1 < n; ++i) if (rank[i] < rank[best]) best = i;
      if (rank[best] == PairTable::kNone) break;
      s[best] = nid[best];
      for (size_t i = best + 1; i + 1 < n; ++i) { s[i] = s[i + 1]; rank[i] = rank[i + 1]; nid[i] = nid[i + 1]; }
      --n;
      if (best > 0) std::tie(rank[best - 1], nid[best - 1]) = pairs_.find(s[best - 1], s[best]);
      if (best + 1 < n) std::tie(rank[best], nid[best]) = pairs_.find(s[best], s[best + 1]);
    }
    s.resize(n);
  }

  // The reference's algorithm for long words: a heap of (rank, position) candidates over a
  // linked list of symbols; stale candidates are recognised by their merged id.
  void merge_heap(std::vector<int32_t>& s) const {
    const size_t n = s.size();
    std::vector<int32_t> prev(n), next(n);
    std::vector<bool> alive(n, true);
    for (size_t i = 0; i < n; ++i) { prev[i] = int32_t(i) - 1; next[i] = i + 1 < n ? int32_t(i + 1) : -1; }
    struct Cand { uint32_t rank; uint32_t pos; int32_t nid; };
    const auto later = [](const Cand& x, const Cand& y) { return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos; };
    std::vector<Cand> heap;
    heap.reserve(n);
    for (size_t i = 0; i + 1 < n; ++i) {
      auto [r, id] = pairs_.find(s[i], s[i + 1]);
      if (r != PairTable::kNone) heap.push_back({r, uint32_t(i), id});
    }
    std::make_heap(heap.begin(), heap.end(), later);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const Cand top = heap.back();
      heap.pop_back();
      const size_t p = top.pos;
      if (!alive[p] || next[p] < 0) continue;
      const size_t q = size_t(next[p]);
      if (pairs_.find(s[p], s[q]).second != top.nid) continue;
      s[p] = top.nid;
      alive[q] = false;
      next[p] = next[q];
      if (next[q] >= 0) prev[size_t(next[q])] = int32_t(p);
      if (prev[p] >= 0) {
        auto [r, id] = pairs_.find(s[size_t(prev[p])], s[p]);
        if (r != PairTable::kNone) { heap.push_back({r, uint32_t(prev[p]), id}); std::push_heap(heap.begin(), heap.end(), later); }
      }
      if (next[p] >= 0) {
        auto [r, id] = pairs_.find(s[p], s[size_t(next[p])]);
        if (r != PairTable::kNone) { heap.push_back({r, uint32_t(p), id}); std::push_heap(heap.begin(), heap.end(), later); }
      }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) if (alive[i]) s[k++] = s[i];
    s.resize(k);
  }

  bool byte_level_ = false, byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false, holes_ = false;
  int32_t unk_id_ = -1;
  StringMap vocab_, raw_vocab_;  // raw_vocab_: raw bytes -> id (byte-level only)
  std::vector<std::string> id_to_token_;
  std::array<int32_t, 256> byte_id_{}, fallback_id_{};
  std::vector<int32_t> bmp_id_;
  std::unordered_map<char32_t, int32_t> astral_id_;
  PairTable pairs_;
  mutable std::shared_mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
  static inline thread_local bool pending_unk_ = false;
};

}  // namespace fathom::tok::detail
